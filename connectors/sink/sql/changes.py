"""Change events as row operations, and one flush's operations collapsed per key.

An event becomes an upsert (``c``, ``u``, ``r``: the ``after`` image), a delete (``d``, by
the record key) or a truncate (``t``); tombstones (null values) carry nothing for a table.
Within one flush only the last state per key matters, so :class:`TableBatch` keeps just
that: at most one delete (run first) and one upsert per key. A delete after an upsert drops
the upsert; an upsert after a delete keeps the delete, so the row is written afresh; a
truncate drops everything before it for the table and empties the table first.

Each change also carries what history tables record (:mod:`.history`): its op, its time
(``source.ts_ms``, else the envelope's ``ts_ms``, else the record's timestamp) and its source
position (:func:`position_of`); a delete's ``row`` is its before image (or just its key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from connectors.envelope import unwrap
from connectors.sink.sql.columnar import collapse
from connectors.sink.sql.naming import TableName, render
from log.api import LogRecord

__all__ = ["BadRecordError", "Change", "TableBatch", "decode", "position_of"]

_UPSERT_OPS = frozenset(("c", "u", "r"))
_OPS = frozenset(("c", "u", "r", "d", "t"))


class BadRecordError(ValueError):
    """The record is not a change event this sink can apply; the message says why."""


class Change(NamedTuple):
    # A tuple, not a frozen dataclass: one is made per record, and a frozen dataclass's
    # __init__ costs several times a tuple's.
    table: TableName
    kind: Literal["upsert", "delete", "truncate"]
    key: dict[str, Any] | None = None  # key column -> value, in key order
    row: dict[str, Any] | None = None  # the after image (upserts), the before image (deletes)
    op: str = ""  # the event's op: c, u, r, d or t
    ts_ms: int = 0  # when the change happened at the source
    position: str | None = None  # where in the source's changelog (see position_of)


def decode(record: LogRecord, template: str, history: bool = True) -> Change | None:
    """The change ``record`` carries, None for a tombstone; BadRecordError if it is not one.

    ``history=False`` leaves out what only history tables need (time, position).
    """
    if record.value is None:
        return None
    value = _json(record.value, "value")
    if not isinstance(value, dict) or value.get("op") not in _OPS:
        raise BadRecordError("value is not a change event (a JSON object with op c, u, r, d or t)")
    source = value.get("source")
    table = render(template, record.topic, source if isinstance(source, Mapping) else None)
    if table is None:
        raise BadRecordError(f"the table template gives an empty name for topic {record.topic}")
    op = value["op"]
    ts_ms, position = (_ts_ms(value, source, record), position_of(source)) if history else (0,
                                                                                           None)
    if op == "t":
        return Change(table, "truncate", None, None, op, ts_ms, position)
    key = _json(record.key, "key") if record.key is not None else None
    if not isinstance(key, dict) or not key:
        raise BadRecordError("key is not a JSON object of key columns: the row has no address")
    if any(v is None for v in key.values()):
        raise BadRecordError(f"key {key} has a null column")
    if op == "d":
        before = value.get("before")
        return Change(table, "delete", key, {**before, **key} if isinstance(before, dict)
                      else dict(key), op, ts_ms, position)
    after = value.get("after")
    if not isinstance(after, dict):
        raise BadRecordError(f"op {op!r} event without an 'after' object")
    row = {**after, **key}  # the key columns, even if the image left them out
    return Change(table, "upsert", key, row, op, ts_ms, position)


def position_of(source: Any) -> str | None:
    """The source position in an event's ``source`` block, as text that sorts per source:
    the LSN (PostgreSQL), ``file:pos`` (MySQL/MariaDB binlog), the poll watermark as JSON
    (sql_poll); None when the block has none of them."""
    if not isinstance(source, Mapping):
        return None
    if source.get("lsn") is not None:
        return str(source["lsn"])
    if source.get("file") is not None and source.get("pos") is not None:
        return f"{source['file']}:{source['pos']}"
    if source.get("watermark") is not None:
        return orjson.dumps(source["watermark"], option=orjson.OPT_SORT_KEYS).decode()
    return None


def _ts_ms(value: Mapping[str, Any], source: Any, record: LogRecord) -> int:
    # A snapshot read may carry ts_ms 0 in its source block: fall back to when it was read.
    for candidate in (source.get("ts_ms") if isinstance(source, Mapping) else None,
                      value.get("ts_ms")):
        if isinstance(candidate, int) and not isinstance(candidate, bool) and candidate > 0:
            return candidate
    return record.timestamp_ms


def _json(data: bytes, what: str) -> Any:
    """The JSON of a key or value; Kafka Connect's schema-wrapped form gives its payload."""
    try:
        return unwrap(orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        raise BadRecordError(f"{what} is not JSON ({exc})") from None


@dataclass
class TableBatch:
    """The last operation per key of one table in one flush, and whether it truncates first."""

    truncate: bool = False
    upserts: dict[bytes, dict[str, Any]] = field(default_factory=dict)  # key -> row
    deletes: dict[bytes, dict[str, Any]] = field(default_factory=dict)  # key -> key columns
    # Or, instead, the fitted rows of whole writes decoded as columns (.columnar), in log
    # order, each with its place in its write (``_seq``); collapsed per key at flush.
    columnar: list[pa.Table] = field(default_factory=list)
    key: tuple[str, ...] = ()  # the columnar rows' key columns

    def add_columnar(self, rows: pa.Table, key: tuple[str, ...]) -> None:
        """Add the rows of a columnar write (all upserts; see :mod:`.columnar`)."""
        self.key = key
        if self.truncate or self.upserts or self.deletes or (
                self.columnar and self.columnar[0].column_names != rows.column_names):
            # Mixed with per-record changes, or other columns (a column left out of one
            # write's images must not become nulls): one row at a time, as per record.
            self.columnar.append(rows)
            self.materialize()
        else:
            self.columnar.append(rows)

    def materialize(self) -> None:
        """Turn the columnar rows into per-key rows, as if each had been added by :meth:`add`."""
        chunks, self.columnar = self.columnar, []
        for chunk in chunks:
            for row in chunk.sort_by("_seq").drop_columns(["_seq"]).to_pylist():
                self.upserts[orjson.dumps([row[k] for k in self.key])] = row

    def columnar_rows(self, key: Sequence[str]) -> pa.Table | None:
        """The columnar rows collapsed to the last per key; None when the batch holds none."""
        if not self.columnar:
            return None
        offset, chunks = 0, []
        for chunk in self.columnar:  # _seq runs on across the writes
            chunks.append(chunk.set_column(chunk.column_names.index("_seq"), "_seq",
                                           pc.add(chunk["_seq"], offset)))
            offset += chunk.num_rows
        return collapse(pa.concat_tables(chunks), key)

    def add(self, change: Change, row: dict[str, Any] | None = None) -> None:
        """Apply ``change``; ``row`` is its image already fitted to the table (upserts)."""
        if change.kind == "truncate":
            self.truncate = True
            self.columnar.clear()
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
        return (len(self.upserts) + len(self.deletes) + self.truncate
                + sum(int(c.num_rows) for c in self.columnar))
