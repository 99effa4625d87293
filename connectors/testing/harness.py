"""What a connector's author provides to run the conformance suites: a harness.

A harness knows how to configure its connector against a real upstream or target (a SQLite
file, a DuckDB file, a PostgreSQL server started by the test fixtures) and how to make
changes there or read the result back. The suites (:mod:`.source_suite`,
:mod:`.sink_suite`) do the rest, the same way for every connector.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from connectors.api import ConnectorContext, Sink, SinkConfig, Source, SourceConfig
from hub.errors import RecordError
from log.api import Log, LogRecord

__all__ = ["DeadLetters", "SinkHarness", "SourceHarness", "make_context"]


class SourceHarness(ABC):
    """Drives one source type against a real upstream.

    ``config`` should make the source quick to test: a short poll interval and batches
    smaller than the handful of changes a test makes, so that resuming mid-stream is tested.
    """

    source_class: type[Source[Any]]
    # How long to keep polling after the expected events arrived, to catch extra ones.
    settle_s: float = 0.5

    @abstractmethod
    def config(self, name: str) -> SourceConfig:
        """The source's config."""

    @abstractmethod
    def produce(self, count: int) -> list[bytes]:
        """Make ``count`` new changes upstream; return the keys their events must carry."""

    def close(self) -> None:  # noqa: B027
        """Release what the harness holds (called once per test)."""

    def make(self, name: str, data_dir: Path) -> Source[Any]:
        return self.source_class(self.config(name), make_context(name, data_dir))


class SinkHarness(ABC):
    """Drives one sink type against a real target."""

    sink_class: type[Sink[Any]]
    # Whether the target keeps its own offsets, so that start() returns what it holds even
    # when the hub's committed offsets are older (a crash after flush, before the commit).
    stores_offsets: bool = True

    @abstractmethod
    def config(self, name: str) -> SinkConfig:
        """The sink's config (its topics should match the suite's topics, ``conformance.*``)."""

    @abstractmethod
    def state(self) -> Any:
        """The target's content, comparable with ``==`` to :meth:`expected`."""

    @abstractmethod
    def expected(self, records: Sequence[LogRecord]) -> Any:
        """What :meth:`state` must be after ``records`` were written exactly once."""

    def close(self) -> None:  # noqa: B027
        """Release what the harness holds (called once per test)."""

    def make(
        self, name: str, data_dir: Path, dead_letters: DeadLetters | None = None
    ) -> Sink[Any]:
        context = make_context(name, data_dir, dead_letters or DeadLetters(tolerate=False))
        return self.sink_class(self.config(name), context)


class DeadLetters:
    """A ``context.dead_letter`` for tests: keeps the records, or fails like the hub does."""

    def __init__(self, tolerate: bool) -> None:
        self.tolerate = tolerate
        self.records: list[tuple[LogRecord, str]] = []

    def __call__(self, record: LogRecord, reason: str) -> None:
        if not self.tolerate:
            raise RecordError(
                reason, topic=record.topic, partition=record.partition, offset=record.offset
            )
        self.records.append((record, reason))


class _NoLog:
    """Stands in for the log: the suites feed connectors directly, without one."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(
            f"the connector called context.log.{name}, but the conformance kit runs "
            "connectors without a log; give the harness's make() a context with a real Log"
        )


def make_context(
    name: str, data_dir: Path, dead_letter: Callable[[LogRecord, str], None] | None = None
) -> ConnectorContext:
    data_dir.mkdir(parents=True, exist_ok=True)
    context = ConnectorContext(
        name=name,
        log=cast(Log, _NoLog()),
        data_dir=data_dir,
        logger=logging.getLogger(f"changehub.conformance.{name}"),
    )
    if dead_letter is not None:
        context.dead_letter = dead_letter
    return context
