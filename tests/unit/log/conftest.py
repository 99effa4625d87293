"""Fixtures for the embedded log's unit tests: a log in a temporary directory, a settable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from log.api import Durability, Record, TopicConfig
from log.embedded import EmbeddedLog


class FakeClock:
    """Seconds since the epoch, moved by the test (the log reads it as its clock)."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.ms = start_ms

    def __call__(self) -> float:
        return self.ms / 1000.0

    def advance(self, ms: int) -> None:
        self.ms += ms


OpenLog = Callable[..., EmbeddedLog]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def open_log(tmp_path: Path, clock: FakeClock) -> Iterator[OpenLog]:
    """Opens EmbeddedLogs on ``tmp_path/log`` without background jobs; closes them after."""
    opened: list[EmbeddedLog] = []

    def _open(**kwargs: Any) -> EmbeddedLog:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("background_jobs", False)
        path = kwargs.pop("path", tmp_path / "log")
        durability = kwargs.pop("durability", Durability())
        log = EmbeddedLog(path, durability, TopicConfig(), **kwargs)
        opened.append(log)
        return log

    yield _open
    for log in opened:
        log.close()


def records(n: int, *, start: int = 0, size: int = 10, ts: int = 0) -> list[Record]:
    return [
        Record(b"k%d" % i, (b"v%d-" % i).ljust(size, b"x"), ts) for i in range(start, start + n)
    ]
