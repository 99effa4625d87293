"""Unchanged TOASTed values: filling in what Postgres did not send.

Postgres stores large values (over about 2 kB) out of line, "TOASTed". When an update does
not touch such a value, the WAL does not carry it, and pgoutput sends the marker 'u'
("unchanged") instead of the value. Emitting the row without it would be wrong. Where the
value comes from:

1. Under ``REPLICA IDENTITY FULL`` Postgres sends the whole old row with the update, values
   included: the stream fills them from it (no lookup, nothing to configure). This is the
   recommended setting for tables with large values that get updated.
2. Otherwise, with ``toast: log`` (the default), from the row's previous image in the log:
   the last event of the same key carries the full row as it was. Looked up in a small
   cache of recent images, then in the batch being built, then in the log itself (after
   waiting for the batches handed over to be written), reading the key's partition
   backwards from its end.
3. With ``toast: fail``, or when the log holds no earlier image of the row (retention
   deleted it; or the row predates the capture and was never snapshotted), the source
   fails with :class:`SchemaError` saying to set REPLICA IDENTITY FULL.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal

import orjson

from connectors.api import SourceRecord
from connectors.envelope import decode_value
from connectors.source.postgres.pgoutput import UNCHANGED
from connectors.source.postgres.schema import TableSchema
from hub.errors import SchemaError, UnknownTopicError
from log.api import Log, LogRecord, TopicPartition
from log.partitioner import partition_for

__all__ = ["ToastImages"]

_SCAN_STEP = 1000


class ToastImages:
    """The ``toast`` filler handed to :class:`streaming.ChangeStream`. Not thread-safe."""

    def __init__(
        self,
        policy: Literal["log", "fail"],
        *,
        log: Log | None,
        partitions: Callable[[str], int],
        pending: Callable[[], Sequence[SourceRecord]],
        drain: Callable[[], None],
        cache_size: int = 10_000,
    ) -> None:
        self._policy = policy
        self._log = log
        self._partitions = partitions
        self._pending = pending
        self._drain = drain
        self._cache: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self._cache_size = cache_size
        self.tracked: set[str] = set()  # topics whose events keep the cache current
        self.lookups = 0  # log scans done (for tests and metrics)

    def note(self, topic: str, key: bytes | None, after: bytes | None) -> None:
        """An event of a tracked topic: its image (JSON) is now the key's latest (None:
        deleted)."""
        if key is None:
            return
        if after is None:
            self._cache.pop((topic, key), None)
            return
        self._cache[(topic, key)] = after
        self._cache.move_to_end((topic, key))
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def __call__(
        self, table: TableSchema, key: bytes | None, row: dict[str, Any]
    ) -> dict[str, Any]:
        missing = [c for c, v in row.items() if v is UNCHANGED]
        if self._policy == "fail" or key is None:
            raise self._error(
                table,
                missing,
                "toast: fail is set"
                if key is not None
                else "the table has no key to look the row up by",
            )
        self.tracked.add(table.topic)
        image = self._find(table.topic, key)
        if image is None:
            raise self._error(table, missing, "the log holds no earlier image of the row")
        absent = [c for c in missing if c not in image]
        if absent:
            raise self._error(table, absent, "the row's last image in the log lacks them")
        return {c: image[c] if v is UNCHANGED else v for c, v in row.items()}

    def _find(self, topic: str, key: bytes) -> dict[str, Any] | None:
        cached = self._cache.get((topic, key))
        if cached is not None:
            image = orjson.loads(cached)
            return image if isinstance(image, dict) else None
        for record in reversed(self._pending()):
            if record.topic == topic and record.key == key:
                return _after(record.value)
        if self._log is None:
            return None
        self._drain()  # batches handed over but not yet in the log
        self.lookups += 1
        return self._scan(topic, key)

    def _scan(self, topic: str, key: bytes) -> dict[str, Any] | None:
        assert self._log is not None
        tp = TopicPartition(topic, partition_for(key, self._partitions(topic)))
        try:
            start, end = self._log.start_offset(tp), self._log.end_offset(tp)
        except UnknownTopicError:
            return None
        high = end
        while high > start:
            low = max(start, high - _SCAN_STEP)
            for record in reversed(self._read(tp, low, high)):
                if record.key == key:
                    return _after(record.value)
            high = low
        return None

    def _read(self, tp: TopicPartition, low: int, high: int) -> list[LogRecord]:
        assert self._log is not None
        out: list[LogRecord] = []
        offset = low
        while offset < high:
            records = self._log.read(tp, offset, max_records=high - offset)
            if not records:
                break
            out.extend(r for r in records if r.offset < high)
            offset = records[-1].offset + 1
        return out

    @staticmethod
    def _error(table: TableSchema, columns: list[str], why: str) -> SchemaError:
        return SchemaError(
            f"an update of {table.qualified} left TOASTed column(s) {', '.join(columns)} "
            f"unchanged and Postgres did not send their values; {why}. Run ALTER TABLE "
            f"{table.qualified} REPLICA IDENTITY FULL so Postgres sends the old row with every "
            "change. This change stays in the slot: to move past it, reset the source "
            "(changehub reset) for a fresh snapshot"
        )


def _after(value: bytes | None) -> dict[str, Any] | None:
    envelope = decode_value(value)
    if envelope is None:
        return None  # a tombstone: the row was deleted
    after = envelope.get("after")
    return after if isinstance(after, dict) else None
