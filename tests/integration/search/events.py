"""Building log records of change events for the search sink's tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from connectors.envelope import Op, encode_key, event_records
from log.api import LogRecord

TS = 1_700_000_000_000


class Stream:
    """Records of one topic-partition with consecutive offsets, as the log would hold them."""

    def __init__(self, topic: str = "shop.public.orders", key: Iterable[str] = ("id",)) -> None:
        self.topic = topic
        self.key = list(key)
        self.offset = 0
        schema, table = topic.split(".")[1:]
        self.source = {"connector": "postgres", "name": "shop", "db": "shop",
                       "schema": schema, "table": table, "ts_ms": TS, "snapshot": "false"}

    def change(self, op: Op, row: Mapping[str, Any] | None = None, *,
               key: Mapping[str, Any] | None = None) -> list[LogRecord]:
        """One change (a delete also yields its tombstone)."""
        key_row = key if key is not None else (row or {})
        encoded = None if op == "t" else encode_key(key_row, self.key)
        out = []
        for rec in event_records(
            topic=self.topic, key=encoded, op=op,
            before=dict(key_row) if op == "d" else None,
            after=dict(row) if op in ("c", "u", "r") and row is not None else None,
            source=self.source, ts_ms=TS,
        ):
            out.append(LogRecord(self.topic, 0, self.offset, rec.timestamp_ms, rec.key, rec.value))
            self.offset += 1
        return out

    def raw(self, key: bytes | None, value: bytes | None) -> LogRecord:
        record = LogRecord(self.topic, 0, self.offset, TS, key, value)
        self.offset += 1
        return record
