"""Incremental snapshots: read a table again while streaming continues (DBLog watermarks).

The watermark algorithm of Netflix's DBLog as Debezium's MySQL connector runs it, with rows
of a *signal table* as watermarks (``signal_table``, default ``<first database>.
changehub_signal``; created on the first request, in Debezium's layout ``id, type, data``).
For each chunk of a table, in key order, on its own connection:

1. insert a *low* watermark row (``type = 'snapshot-window-open'``, ``id = '<window>-open'``)
   and commit it;
2. read the next ``snapshot_chunk_size`` rows after the last key (a plain autocommit
   ``SELECT``: its read view is taken after the low watermark committed) into a buffer, by
   key;
3. insert the *high* watermark row (``…-close``);
4. back in the stream: events before the low watermark are emitted as usual. Between low and
   high ("the window") every streamed change of the table removes its key from the buffer —
   the stream's event is as new as the row read, or newer. At the high watermark the rows
   left are emitted as reads (``op: r``, ``source.snapshot: "incremental"``), the window's
   rows are deleted from the signal table, and the next chunk starts.

Why it is exact: both servers commit to InnoDB in binlog order, so when the low watermark's
commit returns every transaction before it in the binlog is visible to the read; and a
transaction the read sees committed before the high watermark was written, so it is in the
window or before it. No locks, no pause of the stream beyond reading one chunk. The queue of
tables and the last key emitted (:class:`~connectors.source.incremental.IncrementalProgress`)
are part of the checkpoint; a window open at a crash is read again after the restart (old
watermarks carry another window id and are ignored).

Triggered by a *signal*: :func:`request_snapshot` (what ``changehub snapshot`` calls through
the hub's API) inserts ``type = 'execute-snapshot'``, ``data = {"source": …, "tables": […]}``
into the signal table; the running source sees the row in its binlog, in commit order, and
queues the tables. The capture user needs CREATE, INSERT and DELETE on the signal table.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

import pymysql

from connectors.api import SourceRecord
from connectors.source.incremental import IncrementalProgress, parse_request, snapshot_request
from connectors.source.mysql.binlog import connection_error
from connectors.source.mysql.checkpoint import Position
from connectors.source.mysql.config import MySqlSourceConfig
from connectors.source.mysql.schema import TableSchema
from connectors.source.mysql.server import Connection, connect
from connectors.source.mysql.snapshot import read_table
from hub.errors import UsageError

__all__ = ["IncrementalSnapshot", "Window", "request_snapshot", "signal_table_ddl"]

OPEN: Final = "snapshot-window-open"
CLOSE: Final = "snapshot-window-close"

log = logging.getLogger("changehub.source.mysql")


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def signal_table_ddl(qualified: str) -> str:
    db, table = qualified.split(".", 1)
    return (
        f"CREATE TABLE IF NOT EXISTS {_quote(db)}.{_quote(table)} ("
        "id VARCHAR(64) NOT NULL PRIMARY KEY, type VARCHAR(32) NOT NULL, data TEXT NULL)"
    )


def _insert(conn: Connection, table: str, id_: str, kind: str, data: str) -> None:
    db, name = table.split(".", 1)
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO {_quote(db)}.{_quote(name)} (id, type, data) VALUES (%s, %s, %s)",
            (id_, kind, data),
        )


def request_snapshot(config: MySqlSourceConfig, tables: Sequence[str] | None = None) -> str:
    """Ask the running source ``config.name`` to snapshot ``tables`` (default: every table it
    captures) again; return what was asked for, for the answer.

    The request travels through the binlog (a row in the signal table), so it works from any
    process that can connect. Raises :class:`UsageError` for a table the source does not
    capture.
    """
    wanted = list(tables or ())
    bad = [t for t in wanted if "." not in t or not config.captures(*t.split(".", 1))]
    if bad:
        captured = ", ".join([*(f"{d}.*" for d in config.databases), *config.tables])
        raise UsageError(
            f"source {config.name} does not capture {', '.join(bad)} (name tables as db.table); "
            f"it captures {captured}"
        )
    conn = connect(dict(config.connection()), f"source {config.name}: sending the request")
    try:
        with conn.cursor() as cur:
            cur.execute(signal_table_ddl(config.signal))
        body = snapshot_request(config.name, wanted).decode()
        _insert(conn, config.signal, uuid.uuid4().hex, "execute-snapshot", body)
    except pymysql.err.MySQLError as exc:
        raise connection_error(
            exc, f"writing the snapshot request into the signal table {config.signal}"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return ", ".join(wanted) if wanted else "every table it captures"


class Window:
    """The rows of the chunk in flight, by key, in key order; streamed changes remove
    theirs while the window is open."""

    __slots__ = ("open", "rows", "table")

    def __init__(self, table: str, rows: dict[bytes | None, list[SourceRecord]]) -> None:
        self.table = table
        self.rows = rows
        self.open = False

    def discard(self, key: bytes | None) -> None:
        self.rows.pop(key, None)


class IncrementalSnapshot:
    """The reader thread's side: reacts to signal-table rows in the stream and reads chunks.

    Not thread-safe; lives in the source's reader thread next to its ``ChangeStream``,
    which calls :meth:`on_signal` for every row written to the signal table and consults
    :attr:`window` for the changes it streams.
    """

    def __init__(
        self,
        *,
        config: MySqlSourceConfig,
        table: Callable[[str], TableSchema | None],
        all_tables: Callable[[], list[str]],
        clock_ms: Callable[[], int],
    ) -> None:
        self._config = config
        self._table = table
        self._all_tables = all_tables
        self._clock_ms = clock_ms
        self._conn: Connection | None = None
        self._window_id: str | None = None
        self.window: Window | None = None
        self._chunk_full = False
        self._chunk_last: tuple[Any, ...] | None = None

    # -- from the stream ----------------------------------------------------------------------

    def on_signal(
        self, row: dict[str, Any], progress: IncrementalProgress | None, position: Position
    ) -> tuple[IncrementalProgress | None, list[SourceRecord]]:
        """A row inserted into the signal table: (the new progress, records to emit)."""
        kind, id_ = str(row.get("type") or ""), str(row.get("id") or "")
        if kind == "execute-snapshot":
            tables = parse_request(str(row.get("data") or ""), self._config.name)
            if tables is None:
                return progress, []
            wanted = tables or self._all_tables()
            known = [t for t in wanted if "." in t and self._config.captures(*t.split(".", 1))]
            queued = (progress or IncrementalProgress()).queue(known)
            if queued is None:
                return progress, []
            log.info("incremental snapshot of %s requested", ", ".join(known))
            return self.start(queued, position), []
        if self._window_id is None or self.window is None:
            return progress, []
        if kind == OPEN and id_ == f"{self._window_id}-open":
            self.window.open = True  # from here, streamed changes replace the rows read
            return progress, []
        if kind == CLOSE and id_ == f"{self._window_id}-close" and self.window.open:
            assert progress is not None
            records, progress = self._close(progress)
            return self.start(progress, position), records
        return progress, []

    # -- chunks -------------------------------------------------------------------------------

    def start(
        self, progress: IncrementalProgress | None, position: Position
    ) -> IncrementalProgress | None:
        """Begin the next chunk if there is work and no window is in flight; the progress
        with tables that cannot be read left out."""
        if self._window_id is not None:
            return progress
        while progress is not None and progress.pending:
            name = progress.pending[0]
            schema = self._table(name)
            if schema is None:
                log.warning("incremental snapshot: %s does not exist (any more); skipped", name)
            elif not schema.key:
                log.warning("incremental snapshot: %s has no primary key; skipped", name)
            else:
                self._read_chunk(schema, progress, position)
                return progress
            progress = self._next_table(progress)
        return progress

    def _read_chunk(
        self, schema: TableSchema, progress: IncrementalProgress, position: Position
    ) -> None:
        window = uuid.uuid4().hex
        table = self._config.signal
        size = self._config.snapshot_chunk_size
        conn = self._connection()
        rows: dict[bytes | None, list[SourceRecord]] = {}
        try:
            _insert(conn, table, f"{window}-open", OPEN, self._config.name)
            chunk = next(
                read_table(
                    conn, schema, source_name=self._config.name, position=position,
                    after=progress.after, chunk_size=size, clock_ms=self._clock_ms,
                    snapshot="incremental",
                )
            )  # fmt: skip
            for record in chunk.records:
                rows[record.key] = [record]
            _insert(conn, table, f"{window}-close", CLOSE, self._config.name)
        except pymysql.err.MySQLError as exc:
            raise connection_error(exc, f"reading a chunk of {schema.db}.{schema.table}") from None
        self._window_id = window
        self.window = Window(f"{schema.db}.{schema.table}", rows)
        self._chunk_full = not chunk.done
        self._chunk_last = chunk.last_key

    def _close(
        self, progress: IncrementalProgress
    ) -> tuple[list[SourceRecord], IncrementalProgress | None]:
        """The high watermark: what no streamed change replaced, and the progress after it."""
        window, self.window = self.window, None
        self._window_id = None
        assert window is not None
        records = [r for recs in window.rows.values() for r in recs]
        rows = progress.rows + len(window.rows)
        with contextlib.suppress(pymysql.err.MySQLError):
            db, name = self._config.signal.split(".", 1)
            with self._connection().cursor() as cur:
                # This window's rows, and any a crash left behind.
                cur.execute(
                    f"DELETE FROM {_quote(db)}.{_quote(name)} "
                    "WHERE type IN (%s, %s) AND data = %s",
                    (OPEN, CLOSE, self._config.name),
                )
        if self._chunk_full and self._chunk_last is not None:
            return records, IncrementalProgress(progress.pending, self._chunk_last, rows)
        return records, self._next_table(IncrementalProgress(progress.pending, None, rows))

    def _next_table(self, progress: IncrementalProgress) -> IncrementalProgress | None:
        log.info(
            "incremental snapshot of %s finished (%d rows emitted)",
            progress.pending[0],
            progress.rows,
        )
        rest = progress.pending[1:]
        return IncrementalProgress(rest) if rest else None

    def _connection(self) -> Connection:
        if self._conn is None or not self._conn.open:
            self._conn = connect(
                dict(self._config.connection()), f"source {self._config.name}: incremental snapshot"
            )
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
