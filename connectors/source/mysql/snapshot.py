"""The consistent snapshot: every row of the captured tables as of one binlog position.

MariaDB gives it without a lock: ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` makes the
``binlog_snapshot_file``/``binlog_snapshot_position`` status variables show the binlog
position matching the transaction's view, and ``BINLOG_GTID_POS`` turns that into a GTID
state to stream from. MySQL has no such thing, so there the snapshot transaction starts
under a brief ``FLUSH TABLES WITH READ LOCK`` while the position is read (needs RELOAD).

Rows are read in primary-key order, ``snapshot_chunk_size`` at a time (keyset paging:
``WHERE (k1, k2) > (…) ORDER BY k1, k2 LIMIT n``), and every chunk is handed over with the
key of its last row, so that a snapshot interrupted by a crash resumes after the last chunk
in the log (see :class:`~connectors.source.mysql.checkpoint.Replay` for how the stream then
stays exact).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pymysql

from connectors.api import SourceRecord
from connectors.envelope import encode_key, event_records
from connectors.source.mysql.binlog import connection_error
from connectors.source.mysql.checkpoint import Position
from connectors.source.mysql.schema import TableSchema
from connectors.source.mysql.server import Connection, _binlog_status
from hub.errors import SchemaError

__all__ = ["SnapshotChunk", "estimated_rows", "open_snapshot", "read_table"]


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def open_snapshot(conn: Connection, mariadb: bool) -> Position:
    """Start the snapshot transaction on ``conn``; return the binlog position it sees."""
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            if mariadb:
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
                status = {str(k).lower(): str(v) for k, v in cur.fetchall()}
                file = status["binlog_snapshot_file"]
                pos = int(status["binlog_snapshot_position"])
                cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
                row = cur.fetchone()
                gtid = "" if row is None or row[0] is None else str(row[0])
                return Position(gtid, file, pos)
            cur.execute("FLUSH TABLES WITH READ LOCK")
            try:
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                file, pos = _binlog_status(cur)
            finally:
                cur.execute("UNLOCK TABLES")
            return Position(None, file, pos)
    except pymysql.err.MySQLError as exc:
        raise connection_error(exc, "starting the snapshot") from None


def estimated_rows(conn: Connection, db: str, table: str) -> int | None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (db, table),
        )
        row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


@dataclass(slots=True)
class SnapshotChunk:
    records: list[SourceRecord]
    last_key: tuple[Any, ...] | None  # the key of the chunk's last row
    rows: int
    done: bool  # the table's last chunk


def read_table(
    conn: Connection,
    schema: TableSchema,
    *,
    source_name: str,
    position: Position,
    after: tuple[Any, ...] | None,
    chunk_size: int,
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    snapshot: str = "true",
) -> Iterator[SnapshotChunk]:
    """Read one table after key ``after`` in chunks of read (``op: r``) records;
    ``snapshot`` is their ``source.snapshot`` ("incremental" for an incremental one)."""
    if not schema.key:
        raise SchemaError(
            f"table {schema.db}.{schema.table} has no primary key: the snapshot reads tables in "
            "primary-key order so that it can resume after a crash. Add a primary key, or "
            "leave the table out of `databases`/`tables`, or use `snapshot: never`"
        )
    names = [c.name for c in schema.columns]
    converters = [c.converter() for c in schema.columns]
    key_index = [names.index(k) for k in schema.key]
    keys = ", ".join(_quote(k) for k in schema.key)
    select = (
        f"SELECT {', '.join(_quote(n) for n in names)} "
        f"FROM {_quote(schema.db)}.{_quote(schema.table)}"
    )
    where = f" WHERE ({keys}) > ({', '.join(['%s'] * len(schema.key))})"
    order = f" ORDER BY {keys} LIMIT {int(chunk_size)}"
    source_base = {
        "connector": "mysql",
        "name": source_name,
        "db": schema.db,
        "table": schema.table,
        "server_id": 0,
        "gtid": position.gtid,
        "file": position.file,
        "pos": position.pos,
        "row": 0,
        "ts_ms": 0,
        "snapshot": snapshot,
    }
    while True:
        try:
            with conn.cursor() as cur:
                if after is None:
                    cur.execute(select + order)
                else:
                    cur.execute(select + where + order, list(after))
                raw = cur.fetchall()
        except pymysql.err.MySQLError as exc:
            raise connection_error(exc, f"reading {schema.db}.{schema.table}") from None
        now = clock_ms()
        source = dict(source_base, ts_ms=now)
        records: list[SourceRecord] = []
        for values in raw:
            row = {
                n: None if v is None else conv(v)
                for n, conv, v in zip(names, converters, values, strict=True)
            }
            records += event_records(
                topic=schema.topic,
                key=encode_key(row, schema.key),
                op="r",
                before=None,
                after=row,
                source=source,
                ts_ms=now,
            )
        if raw:
            last = raw[-1]
            after = tuple(last[i] for i in key_index)
        done = len(raw) < chunk_size
        yield SnapshotChunk(records, _json_key(after), len(raw), done)
        if done:
            return


def _json_key(key: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    """A key as it can be stored in a JSON checkpoint and passed back as query parameters."""
    if key is None:
        return None
    return tuple(v if isinstance(v, int | str | float) else str(v) for v in key)
