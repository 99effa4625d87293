"""The replication stream's receive deadline: ask for a keepalive, then give up."""

from __future__ import annotations

import pytest

from connectors.source.postgres.replication import ReceiveDeadline
from hub.errors import RetriableError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_silence_asks_for_a_keepalive_at_half_the_timeout_then_fails_at_the_timeout() -> None:
    clock = Clock()
    d = ReceiveDeadline(10.0, clock)
    clock.now += 4.9
    assert not d.ping_due() and d.seconds_left() == pytest.approx(0.1)
    clock.now += 0.1
    assert d.ping_due()
    d.pinged()
    assert not d.ping_due()
    clock.now += 4.9
    d.check()  # 9.9 s of silence: not yet
    assert d.seconds_left() == pytest.approx(0.1)
    clock.now += 0.1
    with pytest.raises(RetriableError, match="receive_timeout 10 s"):
        d.check()


def test_an_answer_resets_the_deadline() -> None:
    clock = Clock()
    d = ReceiveDeadline(10.0, clock)
    clock.now += 6
    d.pinged()
    clock.now += 1
    d.heard()
    clock.now += 9
    d.check()
    assert d.ping_due()


def test_a_process_frozen_past_the_timeout_asks_again_before_giving_up() -> None:
    clock = Clock()
    d = ReceiveDeadline(10.0, clock)
    clock.now += 60  # SIGSTOP: nothing was asked, so nothing is overdue
    d.check()
    assert d.ping_due()
    d.pinged()
    clock.now += 4.9
    d.check()
    clock.now += 0.1
    with pytest.raises(RetriableError):
        d.check()
