"""The connector boundary: what a source and a sink implement, and what the hub gives them.

A connector is a small class. The hub owns its lifecycle, its offsets and its retries:

* **Source**: ``start(checkpoint)``, ``poll(timeout) -> SourceBatch | None``,
  ``committed(checkpoint)``, ``stop()``. The hub appends each batch's records to the log
  together with the batch's checkpoint, atomically, and only then calls ``committed`` —
  the moment a source may release upstream (advance a replication slot, say).
  All state must be derived from the checkpoint handed to ``start``.
* **Sink**: ``start(resume) -> resume``, ``write(records)``, ``flush() -> offsets``,
  ``stop()``. The hub commits a sink's offsets only after ``flush`` returned them. A sink
  that stores its offsets in its target (in the same transaction as the rows) returns them
  from ``start`` and the hub resumes from there.

Connectors are registered under the entry points ``changehub.sources`` and
``changehub.sinks`` (see :mod:`connectors.registry`), each with a pydantic config model
derived from :class:`SourceConfig` / :class:`SinkConfig`.

Threading: the hub calls a connector's methods from one worker thread, never concurrently,
except ``stop`` which may come from another thread to interrupt a blocking ``poll``/``write``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from hub.units import DurationMs
from log.api import Log, LogRecord, TopicPartition
from log.batch import RecordColumns

__all__ = [
    "ConnectorContext",
    "ErrorPolicy",
    "Offsets",
    "Sink",
    "SinkConfig",
    "Source",
    "SourceBatch",
    "SourceColumns",
    "SourceConfig",
    "SourceRecord",
]

Offsets = dict[TopicPartition, int]


class StrictModel(BaseModel):
    """Base of all config models: unknown keys are errors, values are not coerced loosely."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(StrictModel):
    """Keys every source has. Connector types subclass this with their own keys."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", description="unique name")
    type: str


class ErrorPolicy(StrictModel):
    """What a sink does with a record it cannot write (Kafka Connect's ``errors.*``)."""

    tolerance: Literal["none", "all"] = "none"
    dead_letter_topic: str | None = None  # default: "<sink name>.dlq"


class SinkConfig(StrictModel):
    """Keys every sink has. Connector types subclass this with their own keys."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", description="unique name")
    type: str
    topics: list[str] = Field(min_length=1, description="topic names or globs (shop.*)")
    errors: ErrorPolicy = ErrorPolicy()
    max_batch_records: int = Field(default=5000, ge=1)
    max_batch_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    flush_interval: DurationMs = Field(
        default=1000, ge=0, description="flush (and commit offsets) at least this often"
    )


class SourceRecord(NamedTuple):
    """One record a source produces: the hub picks the partition from the key."""

    topic: str
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


class SourceColumns(Sequence[SourceRecord]):
    """Records of one topic laid out already as the log's key and value columns: what a
    source that encodes in bulk (the Postgres snapshot's worker process) hands over, so the
    hub routes and appends them with no Python object per record (for a single-partition
    topic; otherwise they are made one by one to be partitioned by key)."""

    __slots__ = ("columns", "topic")

    def __init__(self, topic: str, columns: RecordColumns) -> None:
        self.topic = topic
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns)

    def __getitem__(self, i: Any) -> Any:
        return self.records()[i]

    def __iter__(self) -> Iterator[SourceRecord]:
        return iter(self.records())

    def records(self) -> list[SourceRecord]:
        topic = self.topic
        return [SourceRecord(topic, r.key, r.value, r.timestamp_ms) for r in self.columns]


@dataclass(slots=True)
class SourceBatch:
    """Records and the source position after them. ``records`` may be empty (a heartbeat)."""

    records: list[SourceRecord] | SourceColumns
    checkpoint: dict[str, Any]


@dataclass
class ConnectorContext:
    """What the hub hands a connector.

    ``log`` is there for reading (a source filling unchanged TOASTed values from a key's
    previous image, a sink rebuilding an index); writes go through the hub. ``data_dir`` is a
    private directory for connector state that is not part of the log's guarantees.
    ``progress`` reports long work (snapshot, export): ``progress(what, done, total_or_None)``.
    ``dead_letter`` is how a sink with ``errors.tolerance: all`` hands over a record it
    cannot write, with the reason; the hub appends it to the sink's dead-letter topic
    (before the sink's next offsets are committed) and counts it.
    """

    name: str
    log: Log
    data_dir: Path
    logger: logging.Logger
    progress: Callable[[str, int, int | None], None] = field(default=lambda *_: None)
    topic_partitions: Callable[[str], int] = field(default=lambda _: 1)
    dead_letter: Callable[[LogRecord, str], None] = field(default=lambda _r, _why: None)


SourceConfigT = TypeVar("SourceConfigT", bound=SourceConfig)
SinkConfigT = TypeVar("SinkConfigT", bound=SinkConfig)


class Source(ABC, Generic[SourceConfigT]):
    """Base class of sources. Subclasses set ``config_model`` and implement the four calls."""

    config_model: ClassVar[type[SourceConfig]]

    def __init__(self, config: SourceConfigT, context: ConnectorContext) -> None:
        self.config = config
        self.context = context

    @abstractmethod
    def start(self, checkpoint: Mapping[str, Any] | None) -> None:
        """Connect and position after ``checkpoint`` (None: first start)."""

    @abstractmethod
    def poll(self, timeout: float) -> SourceBatch | None:
        """Return the next batch, or None when nothing came within ``timeout`` seconds."""

    def committed(self, checkpoint: Mapping[str, Any]) -> None:
        """The log made everything up to ``checkpoint`` durable: release upstream now."""

    @abstractmethod
    def stop(self) -> None:
        """Disconnect. Must be safe to call more than once and from another thread."""

    def topics(self) -> list[str]:
        """Topics this source writes (known after ``start``), for creating them up front."""
        return []


class Sink(ABC, Generic[SinkConfigT]):
    """Base class of sinks. Subclasses set ``config_model`` and implement the calls."""

    config_model: ClassVar[type[SinkConfig]]

    def __init__(self, config: SinkConfigT, context: ConnectorContext) -> None:
        self.config = config
        self.context = context

    def start(self, resume: Offsets) -> Offsets:
        """Prepare the target. ``resume`` holds the hub's committed offsets.

        Return the offsets to read from: ``resume`` unchanged, or the offsets the target
        stored itself (a SQL sink keeps them in the same transaction as its rows).
        """
        return resume

    @abstractmethod
    def write(self, records: Sequence[LogRecord]) -> None:
        """Take records (in offset order per partition). May buffer; need not be durable."""

    @abstractmethod
    def flush(self) -> Offsets:
        """Make everything written durable in the target; return the next offset per partition."""

    def stop(self) -> None:
        """Release resources. Unflushed writes may be dropped: they will be replayed."""

    def assign(self, resume: Offsets) -> Offsets | None:
        """Scale-out on Kafka: the sink's consumer group gave this running sink more
        partitions; ``resume`` holds the hub's committed offsets for them. Return the offsets
        to read them from, as ``start`` does (reading the target's own stored offsets for
        them where it keeps any), so the partitions already held go on without a pause.
        None, the default: the sink cannot take partitions while it runs, and the hub
        restarts it on its whole new share."""
        return None

    def revoke(self, partitions: Sequence[TopicPartition]) -> bool:
        """Scale-out on Kafka: ``partitions`` leave this running sink for another process,
        right after a ``flush`` (nothing of theirs is buffered). Forget what is kept about
        them (offsets read in ``start`` or ``assign``: the other process moves them on) and
        return True; False, the default: the hub restarts the sink on its new share."""
        return False

    def rewind(self, offsets: Offsets) -> Offsets:
        """``changehub reset`` is moving this sink back to ``offsets`` (hub stopped, sink not
        started). A sink that keeps its own offsets in its target moves them too, so the
        replay is applied rather than skipped as already seen. Returns the offsets the hub
        should commit: ``offsets``, or earlier ones where the target can only rewind to a
        boundary (a file holding offsets on both sides of the point).
        """
        return dict(offsets)


def dead_letter_topic(config: SinkConfig) -> str:
    return config.errors.dead_letter_topic or f"{config.name}.dlq"


def offsets_after(records: Sequence[LogRecord], into: Offsets | None = None) -> Offsets:
    """The next offset per partition after ``records`` (merged into ``into``)."""
    out: Offsets = {} if into is None else into
    for r in records:
        out[TopicPartition(r.topic, r.partition)] = r.offset + 1
    return out


def merge_offsets(a: Mapping[TopicPartition, int], b: Mapping[TopicPartition, int]) -> Offsets:
    out = dict(a)
    for tp, off in b.items():
        if off > out.get(tp, -1):
            out[tp] = off
    return out
