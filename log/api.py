"""The log interface that both backends (embedded files, Kafka) implement.

Everything above ``log/`` (the hub, connectors, the CLI) talks to the log only through
:class:`Log` and the value types here, so that a pipeline runs unchanged on either backend.

Three things are stored behind the same calls:

* records in topic-partitions, with dense int64 offsets from 0;
* source checkpoints, written atomically with the records they cover
  (:meth:`Log.append_checkpointed`), read back with :meth:`Log.last_checkpoint`;
* sink offsets per group (:meth:`Log.commit_offsets` …), like Kafka consumer groups.

Readers see a partition only up to its *stable* end offset: records written by a checkpointed
append become visible once the checkpoint covering them is durable, and a tail written past
the last checkpoint is truncated on recovery (the source sends it again from the checkpointed
position). Nothing a reader has seen is ever taken back.

All methods are thread-safe unless stated otherwise: one writer and many readers per
partition, many partitions at once.
"""

from __future__ import annotations

import re
import struct
from abc import ABC, abstractmethod
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import accumulate, islice, repeat
from typing import Any, Literal, NamedTuple

__all__ = [
    "DAY_MS",
    "Durability",
    "Log",
    "LogRecord",
    "OffsetSpec",
    "PartitionInfo",
    "Record",
    "RecordBlock",
    "TopicConfig",
    "TopicInfo",
    "TopicPartition",
]

DAY_MS = 24 * 3600 * 1000


class TopicPartition(NamedTuple):
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


class Record(NamedTuple):
    """A record to append. ``timestamp_ms`` of 0 means "now" (set by the log at append)."""

    key: bytes | None
    value: bytes | None
    timestamp_ms: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()


class LogRecord(NamedTuple):
    """A record as read back from the log."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class RecordBlock(NamedTuple):
    """Records of one partition read as columns (:meth:`Log.read_block`), without a Python
    object per record: a consumer that handles a fetch in bulk (the batch export hands the keys
    and values to DuckDB as Arrow arrays) builds its columns from these buffers directly.

    ``key_lengths`` and ``value_lengths`` hold one little-endian i32 per record (-1: null),
    ``keys`` and ``values`` the non-null items' bytes concatenated in record order. Headers are
    not carried: a consumer that needs them reads with :meth:`Log.read`.
    """

    tp: TopicPartition
    offsets: array[int]  # typecode "q", one per record, ascending (gaps on compacted topics)
    timestamps: array[int]  # typecode "q"
    key_lengths: bytes
    keys: bytes
    value_lengths: bytes
    values: bytes

    def __len__(self) -> int:
        return len(self.offsets)

    def slice(self, start: int, stop: int) -> RecordBlock:
        """Records ``start`` to ``stop`` (indexes, not offsets) of the block."""
        n = len(self)
        start, stop = max(0, min(start, n)), max(0, min(stop, n))
        if start == 0 and stop == n:
            return self
        stop = max(start, stop)
        if start == stop:
            return RecordBlock(self.tp, array("q"), array("q"), b"", b"", b"", b"")
        klens = struct.unpack(f"<{n}i", self.key_lengths)
        vlens = struct.unpack(f"<{n}i", self.value_lengths)

        def cut(lens: tuple[int, ...], blob: bytes) -> bytes:
            first = sum(x for x in lens[:start] if x > 0)
            return blob[first:first + sum(x for x in lens[start:stop] if x > 0)]

        return RecordBlock(
            self.tp, self.offsets[start:stop], self.timestamps[start:stop],
            self.key_lengths[4 * start:4 * stop], cut(klens, self.keys),
            self.value_lengths[4 * start:4 * stop], cut(vlens, self.values),
        )

    def records(self) -> list[LogRecord]:
        """The records, one :class:`LogRecord` each (without headers): the slow way back."""
        n = len(self)
        keys = _split(self.keys, struct.unpack(f"<{n}i", self.key_lengths))
        values = _split(self.values, struct.unpack(f"<{n}i", self.value_lengths))
        topic, partition = self.tp
        return list(map(_make_log_record, zip(
            repeat(topic), repeat(partition), self.offsets, self.timestamps, keys, values,
            repeat(()),
        )))

    @classmethod
    def of(cls, tp: TopicPartition, records: Sequence[LogRecord]) -> RecordBlock:
        """A block of ``records`` (read one by one, e.g. from a backend without a columnar read)."""
        n = len(records)
        keys = [r.key for r in records]
        values = [r.value for r in records]
        return cls(
            tp,
            array("q", [r.offset for r in records]),
            array("q", [r.timestamp_ms for r in records]),
            struct.pack(f"<{n}i", *(-1 if k is None else len(k) for k in keys)),
            b"".join(k for k in keys if k is not None),
            struct.pack(f"<{n}i", *(-1 if v is None else len(v) for v in values)),
            b"".join(v for v in values if v is not None),
        )


_make_log_record = partial(tuple.__new__, LogRecord)


def _split(blob: bytes, lengths: tuple[int, ...]) -> list[bytes | None]:
    """Consecutive items of ``blob`` of the given lengths (-1: None), sliced in C when none is
    null."""
    if -1 not in lengths:
        ends = list(accumulate(lengths, initial=0))
        return list(map(blob.__getitem__, map(slice, ends, islice(ends, 1, None))))
    out: list[bytes | None] = []
    pos = 0
    for n in lengths:
        if n < 0:
            out.append(None)
        else:
            out.append(blob[pos:pos + n])
            pos += n
    return out


@dataclass(frozen=True)
class TopicConfig:
    """Per-topic settings. Fields a backend cannot honour are documented by that backend."""

    partitions: int = 1
    cleanup: Literal["delete", "compact"] = "delete"
    retention_ms: int | None = 7 * DAY_MS  # None: keep forever
    retention_bytes: int | None = None  # per partition; None: no size limit
    segment_bytes: int = 128 * 1024 * 1024
    segment_ms: int = 7 * DAY_MS
    delete_retention_ms: int = DAY_MS  # how long compaction keeps tombstones
    min_compaction_lag_ms: int = 0
    replication_factor: int = 1  # kafka backend
    min_insync_replicas: int = 1  # kafka backend


@dataclass(frozen=True)
class Durability:
    """When an append is acknowledged.

    ``batch`` (the default): fsync before every append returns. ``interval``: fsync at most
    every ``interval_ms``; an append returns once an fsync covering it happened. ``never``:
    leave it to the OS (fast, loses the page cache's contents on power loss, not on kill -9).
    """

    policy: Literal["batch", "interval", "never"] = "batch"
    interval_ms: int = 100


@dataclass(frozen=True)
class OffsetSpec:
    """Where to reset a group: earliest, latest, an offset, or the first record at/after a time."""

    kind: Literal["earliest", "latest", "offset", "timestamp"]
    value: int = 0

    _TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ].*)?$")

    @classmethod
    def parse(cls, text: str) -> OffsetSpec:
        """Parse ``earliest``, ``latest``, an integer offset, or an ISO-8601 time."""
        t = text.strip()
        if t in ("earliest", "latest"):
            return cls(t)  # type: ignore[arg-type]
        if t.lstrip("-").isdigit():
            n = int(t)
            if n < 0:
                raise ValueError(f"offset must be >= 0, got {n}")
            return cls("offset", n)
        if cls._TIME.match(t):
            dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                raise ValueError(f"time {t!r} needs a time zone, e.g. {t}Z or {t}+01:00")
            return cls("timestamp", int(dt.timestamp() * 1000))
        raise ValueError(
            f"cannot reset to {text!r}: expected earliest, latest, an offset (e.g. 1200) "
            "or an ISO-8601 time with zone (e.g. 2026-01-31T02:00:00Z)"
        )


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    start_offset: int
    end_offset: int  # stable end: the next offset a reader may see
    size_bytes: int


@dataclass(frozen=True)
class TopicInfo:
    name: str
    config: TopicConfig
    partitions: tuple[PartitionInfo, ...]

    @property
    def size_bytes(self) -> int:
        return sum(p.size_bytes for p in self.partitions)


def check_fetch_limits(max_records: int, max_bytes: int) -> None:
    """The limits of a :meth:`Log.fetch`, checked the same way by every backend."""
    if max_records < 1 or max_bytes < 1:
        from hub.errors import UsageError

        raise UsageError(
            f"max_records and max_bytes must be >= 1, got {max_records}, {max_bytes}"
        )


class Log(ABC):
    """A set of topics, source checkpoints and sink group offsets. See the module doc."""

    # -- topics -----------------------------------------------------------------------------

    @abstractmethod
    def create_topic(self, name: str, config: TopicConfig) -> None:
        """Create a topic; a no-op when it exists with the same partition count."""

    @abstractmethod
    def topic_config(self, name: str) -> TopicConfig:
        """Settings of a topic; :class:`UnknownTopicError` if it does not exist."""

    @abstractmethod
    def list_topics(self) -> list[str]:
        """Names of all user topics, sorted."""

    @abstractmethod
    def describe_topic(self, name: str) -> TopicInfo:
        """Config, offsets and sizes of a topic."""

    @abstractmethod
    def delete_topic(self, name: str) -> None:
        """Delete a topic and its data."""

    # -- writing ----------------------------------------------------------------------------

    @abstractmethod
    def append(self, tp: TopicPartition, records: Sequence[Record]) -> int:
        """Append records to one partition atomically; return the offset of the first.

        Returns once the durability policy is met. Visible to readers at once.
        """

    @abstractmethod
    def append_checkpointed(
        self,
        source: str,
        writes: Mapping[TopicPartition, Sequence[Record]],
        checkpoint: Mapping[str, Any],
    ) -> dict[TopicPartition, int]:
        """Append records to several partitions and the source's checkpoint, atomically.

        Either all of ``writes`` and the checkpoint survive a crash or none does. ``writes``
        may be empty (a heartbeat that only moves the checkpoint). Returns the base offset of
        each partition written. One writer per source at a time.
        """

    @abstractmethod
    def last_checkpoint(self, source: str) -> dict[str, Any] | None:
        """The checkpoint of the last durable :meth:`append_checkpointed` of ``source``."""

    # -- reading ----------------------------------------------------------------------------

    def read(
        self,
        tp: TopicPartition,
        offset: int,
        *,
        max_records: int = 10_000,
        max_bytes: int = 8 * 1024 * 1024,
        timeout: float = 0.0,
    ) -> list[LogRecord]:
        """Records from ``offset`` on, up to the stable end.

        Waits up to ``timeout`` seconds for a record when none is there yet (woken by the
        append, not by polling). Always returns at least one record if one is available, even
        when it alone exceeds ``max_bytes``. On a compacted topic offsets may have gaps.
        Raises :class:`OffsetOutOfRangeError` below the start or past the end.
        """
        return self.fetch(
            {tp: offset}, max_records=max_records, max_bytes=max_bytes, timeout=timeout
        )

    @abstractmethod
    def fetch(
        self,
        positions: Mapping[TopicPartition, int],
        *,
        max_records: int = 10_000,
        max_bytes: int = 8 * 1024 * 1024,
        timeout: float = 0.0,
    ) -> list[LogRecord]:
        """Like :meth:`read` across many partitions: waits until any of them has records."""

    def read_block(
        self,
        tp: TopicPartition,
        offset: int,
        *,
        max_records: int = 10_000,
        max_bytes: int = 8 * 1024 * 1024,
    ) -> RecordBlock:
        """Like :meth:`read` without waiting, as columns (:class:`RecordBlock`, no headers).

        The same records :meth:`read` returns from ``offset`` with the same limits (so a
        consumer moves on from the last offset exactly as with :meth:`read`); empty when none
        is there. This default is built on :meth:`read`; a backend overrides it to decode
        its batches into the columns directly.
        """
        return RecordBlock.of(
            tp, self.read(tp, offset, max_records=max_records, max_bytes=max_bytes)
        )

    @abstractmethod
    def start_offset(self, tp: TopicPartition) -> int:
        """The first offset still held (moves forward with retention)."""

    @abstractmethod
    def end_offset(self, tp: TopicPartition) -> int:
        """The stable end: one past the last offset readers may see."""

    @abstractmethod
    def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        """The first offset whose record has a timestamp >= ``timestamp_ms`` (or the end)."""

    def caught_up(self, tp: TopicPartition, offset: int) -> bool:
        """Whether a reader at ``offset`` has read everything ``tp`` holds for now.

        Not always ``offset >= end_offset(tp)``: on Kafka the last records of a partition are
        usually followed by a transaction marker, which takes an offset below the end but is
        never read.
        """
        return offset >= self.end_offset(tp)

    # -- sink group offsets -----------------------------------------------------------------

    @abstractmethod
    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Durably store the next offset to read for each partition of ``group``."""

    @abstractmethod
    def committed_offsets(self, group: str) -> dict[TopicPartition, int]:
        """What :meth:`commit_offsets` stored last, per partition; empty for a new group."""

    @abstractmethod
    def list_groups(self) -> list[str]:
        """Names of all groups that committed offsets."""

    def reset_offsets(
        self, group: str, tps: Sequence[TopicPartition], to: OffsetSpec
    ) -> dict[TopicPartition, int]:
        """Move ``group`` to ``to`` on each partition in ``tps``; returns the new offsets."""
        new: dict[TopicPartition, int] = {}
        for tp in tps:
            start, end = self.start_offset(tp), self.end_offset(tp)
            if to.kind == "earliest":
                new[tp] = start
            elif to.kind == "latest":
                new[tp] = end
            elif to.kind == "offset":
                new[tp] = min(max(to.value, start), end)
            else:
                new[tp] = self.offset_for_time(tp, to.value)
        self.commit_offsets(group, new)
        return new

    # -- lifecycle --------------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Flush, stop background jobs, release the directory lock. Wakes waiting readers."""

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
