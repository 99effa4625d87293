"""Change events as row operations, and one flush's operations collapsed per key.

An event becomes an upsert (``c``, ``u``, ``r``: the ``after`` image), a delete (``d``, by
the record key) or a truncate (``t``); tombstones (null values) carry nothing for a table.
Within one flush only the last state per key matters, so :class:`TableBatch` keeps just
that: at most one delete (run first) and one upsert per key. A delete after an upsert drops
the upsert; an upsert after a delete keeps the delete, so the row is written afresh; a
truncate drops everything before it for the table and empties the table first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from connectors.sink.sql.naming import TableName, render
from log.api import LogRecord

__all__ = ["BadRecordError", "Change", "TableBatch", "decode"]

_UPSERT_OPS = frozenset(("c", "u", "r"))


class BadRecordError(ValueError):
    """The record is not a change event this sink can apply; the message says why."""


@dataclass(frozen=True)
class Change:
    table: TableName
    kind: Literal["upsert", "delete", "truncate"]
    key: dict[str, Any] | None = None  # key column -> value, in key order
    row: dict[str, Any] | None = None  # the after image (upserts)


def decode(record: LogRecord, template: str) -> Change | None:
    """The change ``record`` carries, None for a tombstone; BadRecordError if it is not one."""
    if record.value is None:
        return None
    value = _json(record.value, "value")
    if not isinstance(value, dict) or value.get("op") not in (*_UPSERT_OPS, "d", "t"):
        raise BadRecordError("value is not a change event (a JSON object with op c, u, r, d or t)")
    source = value.get("source")
    table = render(template, record.topic, source if isinstance(source, Mapping) else None)
    if table is None:
        raise BadRecordError(f"the table template gives an empty name for topic {record.topic}")
    op = value["op"]
    if op == "t":
        return Change(table, "truncate")
    key = _json(record.key, "key") if record.key is not None else None
    if not isinstance(key, dict) or not key:
        raise BadRecordError("key is not a JSON object of key columns: the row has no address")
    if any(v is None for v in key.values()):
        raise BadRecordError(f"key {key} has a null column")
    if op == "d":
        return Change(table, "delete", key)
    after = value.get("after")
    if not isinstance(after, dict):
        raise BadRecordError(f"op {op!r} event without an 'after' object")
    row = {**after, **key}  # the key columns, even if the image left them out
    return Change(table, "upsert", key, row)


def _json(data: bytes, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRecordError(f"{what} is not JSON ({exc})") from None


@dataclass
class TableBatch:
    """The last operation per key of one table in one flush, and whether it truncates first."""

    truncate: bool = False
    upserts: dict[bytes, dict[str, Any]] = field(default_factory=dict)  # key -> row
    deletes: dict[bytes, dict[str, Any]] = field(default_factory=dict)  # key -> key columns

    def add(self, change: Change, row: dict[str, Any] | None = None) -> None:
        """Apply ``change``; ``row`` is its image already fitted to the table (upserts)."""
        if change.kind == "truncate":
            self.truncate = True
            self.upserts.clear()
            self.deletes.clear()
            return
        assert change.key is not None
        ident = orjson.dumps(list(change.key.values()))
        if change.kind == "delete":
            self.upserts.pop(ident, None)
            self.deletes[ident] = change.key
        else:
            # An earlier delete of the key stays: deletes run before upserts, so the row is
            # written fresh, without values of columns the new image lacks.
            assert row is not None
            self.upserts[ident] = row

    def __len__(self) -> int:
        return len(self.upserts) + len(self.deletes) + self.truncate
