"""History tables (``mode: history``): one row appended per change instead of one row per key.

Each row holds the change's data columns (the after image; for a delete the before image, or
just the key when the source sent none) and these columns of changehub's own:

===============  ==========  ===========================================================
column           type        meaning
===============  ==========  ===========================================================
``_op``          text        the event's op: c (insert), u (update), d (delete),
                             r (snapshot read), t (truncate: a row with only this)
``_position``    text        the source position: the LSN (PostgreSQL), ``file:pos``
                             (MySQL/MariaDB binlog), the watermark as JSON (sql_poll)
``_ts``          timestamp   when the change happened at the source (UTC)
``_topic``,      text, int,  the record's place in the log: the table's primary key, so
``_partition``,  bigint      a record delivered again is not appended twice
``_offset``
===============  ==========  ===========================================================

With ``history: {scd2: true}`` the table is a type-2 slowly changing dimension: a delete
appends no row, and three more columns say which row is a key's version at which time:

================  =========  ==========================================================
``_valid_from``   timestamp  when this version began (= ``_ts``)
``_valid_to``     timestamp  when the next change of the key ended it; null while current
``_is_current``   boolean    true for the key's live version (none after a delete)
================  =========  ==========================================================

A change closes the key's current row (``_valid_to`` = the change's time, ``_is_current`` =
false) and, unless it is a delete, opens a new one; a truncate closes every current row.
Within one flush the versions of a key are chained in memory, and each key's current row in
the table is closed by one batched ``UPDATE``. Closing is not idempotent by itself: the
sink's offsets, stored in the same transaction, are what keeps a replay from closing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.sink.sql.changes import Change
from connectors.sink.sql.evolution import Kind
from connectors.sink.sql.upsert import upsert_rows
from log.api import LogRecord

__all__ = ["HISTORY_KEY", "HistoryBatch", "apply_history", "history_columns"]

HISTORY_KEY = ("_topic", "_partition", "_offset")
_HISTORY: dict[str, Kind] = {
    "_topic": "text", "_partition": "integer", "_offset": "integer",
    "_op": "text", "_position": "text", "_ts": "datetime",
}
_SCD2: dict[str, Kind] = {"_valid_from": "datetime", "_valid_to": "datetime",
                          "_is_current": "boolean"}

# Keys per closing UPDATE on DuckDB and MySQL/MariaDB, whose executemany runs row by row.
_CHUNK = 500


def history_columns(scd2: bool) -> dict[str, Kind]:
    """changehub's own columns of a history table (see the module doc)."""
    return {**_HISTORY, **_SCD2} if scd2 else dict(_HISTORY)


def utc(ts_ms: int) -> datetime:
    """``ts_ms`` as a naive UTC datetime: the convention of TIMESTAMP columns everywhere."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).replace(tzinfo=None)


@dataclass
class HistoryBatch:
    """One flush's rows for one history table, in log order, with the closes SCD2 needs."""

    scd2: bool
    event_key: tuple[str, ...] | None = None  # the events' key columns (SCD2 closes by them)
    rows: list[dict[str, Any]] = field(default_factory=list)
    # SCD2: key -> (key columns, time) of the first change per key, which ends the version
    # the table holds; and the version opened in this flush that is still open, per key.
    closes: dict[bytes, tuple[dict[str, Any], datetime]] = field(default_factory=dict)
    close_all: datetime | None = None  # a truncate: every current row ends then
    _open: dict[bytes, dict[str, Any]] = field(default_factory=dict)

    def add(self, record: LogRecord, change: Change, data: dict[str, Any] | None) -> None:
        """Append ``change`` (``data``: its image fitted to the table, None for a truncate)."""
        ts = utc(change.ts_ms)
        meta = {"_topic": record.topic, "_partition": record.partition, "_offset": record.offset,
                "_op": change.op, "_position": change.position, "_ts": ts}
        if not self.scd2:
            self.rows.append({**(data or {}), **meta})
            return
        if change.kind == "truncate":
            for row in self._open.values():
                row["_valid_to"], row["_is_current"] = ts, False
            self._open.clear()
            if self.close_all is None:
                self.close_all = ts
            return
        assert change.key is not None
        self.event_key = tuple(change.key)
        ident = orjson.dumps(list(change.key.values()))
        previous = self._open.pop(ident, None)
        if previous is not None:
            previous["_valid_to"], previous["_is_current"] = ts, False
        elif self.close_all is None and ident not in self.closes:
            # After a truncate in this flush the table has no current row left to close.
            self.closes[ident] = (change.key, ts)
        if change.kind == "upsert":
            assert data is not None
            row = {**data, **meta, "_valid_from": ts, "_valid_to": None, "_is_current": True}
            self.rows.append(row)
            self._open[ident] = row

    def __len__(self) -> int:
        return len(self.rows) + len(self.closes) + (self.close_all is not None)


def apply_history(conn: Connection, table: sa.Table, batch: HistoryBatch) -> None:
    """Close what the batch ends, then append its rows (a row already there is kept)."""
    if batch.closes:
        assert batch.event_key is not None
        _close(conn, table, batch.event_key, list(batch.closes.values()))
    if batch.close_all is not None:
        conn.execute(
            table.update()
            .where(table.c._is_current == sa.true())
            .values(_valid_to=batch.close_all, _is_current=False)
        )
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in batch.rows:
        groups.setdefault(tuple(row), []).append(row)
    for rows in groups.values():
        upsert_rows(conn, table, HISTORY_KEY, rows, replace=False)


def _close(
    conn: Connection,
    table: sa.Table,
    key: tuple[str, ...],
    closes: list[tuple[dict[str, Any], datetime]],
) -> None:
    """End the current row of each key at its time: one statement per chunk of keys (DuckDB,
    MySQL/MariaDB), an executemany elsewhere (psycopg pipelines it; SQLite is in-process)."""
    if conn.dialect.name == "duckdb":
        for start in range(0, len(closes), _CHUNK):
            chunk = closes[start:start + _CHUNK]
            ends = sa.values(
                *(sa.column(f"k_{k}", table.c[k].type) for k in key),
                sa.column("k__to", table.c._valid_to.type),
                name="ends",
            ).data([(*(columns[k] for k in key), ts) for columns, ts in chunk])
            conn.execute(
                table.update()
                .where(*(table.c[k] == ends.c[f"k_{k}"] for k in key),
                       table.c._is_current == sa.true())
                .values(_valid_to=ends.c.k__to, _is_current=False)
            )
        return
    if conn.dialect.name in ("mysql", "mariadb"):
        # PyMySQL runs an executemany UPDATE row by row; a multi-table UPDATE joined to the
        # chunk's (key, time) pairs as a derived table is one statement.
        for start in range(0, len(closes), _CHUNK):
            pairs = sa.union_all(*(
                sa.select(*(sa.literal(columns[k], table.c[k].type).label(f"k_{k}")
                            for k in key),
                          sa.literal(ts, table.c._valid_to.type).label("k__to"))
                for columns, ts in closes[start:start + _CHUNK]
            )).subquery("pairs")
            conn.execute(
                table.update()
                .where(*(table.c[k] == pairs.c[f"k_{k}"] for k in key),
                       table.c._is_current == sa.true())
                .values(_valid_to=pairs.c.k__to, _is_current=False)
            )
        return
    statement = (
        table.update()
        .where(*(table.c[k] == sa.bindparam(f"k_{k}") for k in key),
               table.c._is_current == sa.true())
        .values(_valid_to=sa.bindparam("k__to"), _is_current=False)
    )
    conn.execute(statement, [
        {**{f"k_{k}": columns[k] for k in key}, "k__to": ts} for columns, ts in closes
    ])
