"""A log record as a row of an export file, decoded and checked once, for every format.

An export run buffers up to ``max_file_records`` rows per file, so a row keeps nothing of the
parsed envelope: only the record and the envelope's fields as the file columns hold them
(``op``, ``ts_ms``, and the before/after/source/transaction blocks as compact JSON text).
It is a tuple of strings, numbers and bytes, which CPython's cyclic garbage collector stops
tracking at its first pass: 100,000 buffered parsed envelopes (dicts) used to be walked by
every generation-2 collection, which took half of the decoding time (py-spy).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from connectors.envelope import unwrap
from log.api import LogRecord

__all__ = ["BLOCKS", "BadRecordError", "ExportRow", "export_row"]

BLOCKS = ("before", "after", "source", "transaction")


class BadRecordError(ValueError):
    """The record cannot be exported; the message says why."""


class ExportRow(NamedTuple):
    """``record`` with its envelope's fields; all None for a tombstone."""

    record: LogRecord
    op: str | None = None
    ts_ms: int | None = None
    before: str | None = None  # JSON text of the block, None when absent or null
    after: str | None = None
    source: str | None = None
    transaction: str | None = None

    @property
    def offset(self) -> int:
        return self.record.offset


_loads = orjson.loads
_dumps = orjson.dumps


def export_row(record: LogRecord) -> ExportRow:
    if record.key is not None:
        _json(record.key, "key")  # checked only: files hold the key's text as it is
    if record.value is None:
        return ExportRow(record)
    value = _json(record.value, "value")
    if not isinstance(value, dict):
        raise BadRecordError("value is not a JSON object (a change event envelope)")
    get = value.get
    op, ts_ms = get("op"), get("ts_ms")
    if not (op is None or isinstance(op, str)):
        raise BadRecordError(f"envelope field op is {op!r}, expected a string")
    if not (ts_ms is None or (isinstance(ts_ms, int) and not isinstance(ts_ms, bool))):
        raise BadRecordError(f"envelope field ts_ms is {ts_ms!r}, expected an integer")
    before, after, source, transaction = (get(b) for b in BLOCKS)
    return ExportRow(
        record, op, ts_ms,
        None if before is None else _dumps(before).decode(),
        None if after is None else _dumps(after).decode(),
        None if source is None else _dumps(source).decode(),
        None if transaction is None else _dumps(transaction).decode(),
    )


def _json(data: bytes, what: str) -> Any:
    """The JSON of a key or value; Kafka Connect's schema-wrapped form gives its payload."""
    try:
        return unwrap(_loads(data))
    except orjson.JSONDecodeError as exc:
        raise BadRecordError(f"{what} is not JSON ({exc})") from None
