"""Supervision rules of hub.worker: retry transient errors, fail on fatal ones, stop cleanly."""

from __future__ import annotations

import random
import threading
import time

import pytest

from hub.backoff import Backoff
from hub.errors import FatalError, RetriableError
from hub.state import ConnectorState, ConnectorStatus
from hub.worker import Worker


def wait_for(cond, timeout=5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within deadline")
        time.sleep(0.005)


class Scripted(Worker):
    """Fails in open() as scripted, then counts steps."""

    def __init__(self, failures: list[Exception]) -> None:
        super().__init__(
            ConnectorStatus("w", "source", "test"),
            Backoff(initial=0.001, maximum=0.002, rng=random.Random(1)),
        )
        self.failures = list(failures)
        self.opens = 0
        self.steps = 0
        self.closes: list[bool] = []
        self.stepped = threading.Event()

    def open(self) -> None:
        self.opens += 1
        if self.failures:
            raise self.failures.pop(0)

    def step(self) -> None:
        self.steps += 1
        self.stepped.set()
        self.stopping.wait(0.01)

    def close(self, graceful: bool) -> None:
        self.closes.append(graceful)


def test_retriable_errors_are_retried_until_the_connector_runs() -> None:
    w = Scripted([RetriableError("db down"), ConnectionRefusedError("refused")])
    w.start()
    assert w.stepped.wait(5)
    assert w.opens == 3
    assert w.status.state == ConnectorState.RUNNING
    assert w.status.retries == 2
    w.stop()
    w.join(5)
    assert w.status.state == ConnectorState.STOPPED
    assert w.closes[-1] is True  # the normal stop is graceful (flush + commit)
    assert w.closes[:-1] == [False, False]  # failures tear down without committing


def test_fatal_error_puts_connector_in_failed_with_the_message() -> None:
    w = Scripted([FatalError("table public.orders does not exist")])
    w.start()
    w.join(5)
    assert w.status.state == ConnectorState.FAILED
    assert w.status.error == "table public.orders does not exist"
    assert w.steps == 0


def test_unexpected_exception_fails_with_type_name() -> None:
    w = Scripted([KeyError("boom")])
    w.start()
    w.join(5)
    assert w.status.state == ConnectorState.FAILED
    assert w.status.error is not None and w.status.error.startswith("KeyError")


def test_pause_stops_steps_and_resume_continues() -> None:
    w = Scripted([])
    w.start()
    assert w.stepped.wait(5)
    w.pause()
    wait_for(lambda: w.status.state == ConnectorState.PAUSED)
    before = w.steps
    w.stepped.clear()
    assert not w.stepped.wait(0.1)
    assert w.steps == before
    w.resume()
    assert w.stepped.wait(5)
    w.stop()
    w.join(5)
    assert not w.is_alive()


def test_stop_during_backoff_ends_promptly() -> None:
    w = Scripted([RetriableError("down")] * 100)
    w.backoff = Backoff(initial=30, maximum=30)
    w.start()
    wait_for(lambda: w.status.state == ConnectorState.RETRYING)
    t0 = time.monotonic()
    w.stop()
    w.join(5)
    assert not w.is_alive()
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_grows_and_is_capped(attempt: int) -> None:
    b = Backoff(initial=1, maximum=10, rng=random.Random(attempt))
    delays = [b.next_delay() for _ in range(attempt + 1)]
    expected = min(10, 2**attempt)
    assert expected / 2 <= delays[-1] <= expected
