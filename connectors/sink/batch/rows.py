"""A log record as a row of an export file, decoded and checked once, for every format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from connectors.envelope import unwrap
from log.api import LogRecord

__all__ = ["BadRecordError", "ExportRow", "export_row"]


class BadRecordError(ValueError):
    """The record cannot be exported; the message says why."""


@dataclass(frozen=True, slots=True)
class ExportRow:
    """``record`` with its key and value parsed (None for an absent key or a tombstone)."""

    record: LogRecord
    key: Any
    value: dict[str, Any] | None

    @property
    def offset(self) -> int:
        return self.record.offset


def export_row(record: LogRecord) -> ExportRow:
    key = _json(record.key, "key") if record.key is not None else None
    value = _json(record.value, "value") if record.value is not None else None
    if value is not None:
        if not isinstance(value, dict):
            raise BadRecordError("value is not a JSON object (a change event envelope)")
        op, ts_ms = value.get("op"), value.get("ts_ms")
        if not (op is None or isinstance(op, str)):
            raise BadRecordError(f"envelope field op is {op!r}, expected a string")
        if not (ts_ms is None or (isinstance(ts_ms, int) and not isinstance(ts_ms, bool))):
            raise BadRecordError(f"envelope field ts_ms is {ts_ms!r}, expected an integer")
    return ExportRow(record, key, value)


def _json(data: bytes, what: str) -> Any:
    """The JSON of a key or value; Kafka Connect's schema-wrapped form gives its payload."""
    try:
        return unwrap(orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        raise BadRecordError(f"{what} is not JSON ({exc})") from None
