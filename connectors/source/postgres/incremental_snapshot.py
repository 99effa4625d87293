"""Incremental snapshots: read a table again while streaming continues (DBLog watermarks).

The watermark algorithm of Netflix's DBLog, as Debezium's incremental snapshots use it, with
logical decoding messages as watermarks (no signal table to create). For each chunk of a
table, in key order:

1. write a *low* watermark: ``pg_logical_emit_message(true, 'changehub.watermark', 'low:ID')``
   in its own transaction;
2. read the next ``snapshot_chunk_size`` rows after the last key (``COPY``, a fresh snapshot
   taken after the low watermark committed) into a buffer, by key;
3. write the *high* watermark the same way;
4. back in the stream: events before the low watermark are emitted as usual. Between low
   and high ("the window") every streamed event of the table removes its key from the
   buffer — the stream's event is as new as the row read, or newer. At the high watermark
   the rows left in the buffer are emitted as reads (``op: r``, ``source.snapshot:
   "incremental"``), and the next chunk starts.

No locks, no pause of the stream beyond reading one chunk, and the result in the log is
right whatever writers do meanwhile. Reads are stamped with the low watermark's commit LSN,
so ``(commit_lsn, total_order)`` still only grows per key. Progress (the tables queued and
the last key emitted) is part of the checkpoint; a window open at a crash is simply read
again after the restart (old watermarks carry another ID and are ignored).

Triggered by a *signal*: :func:`request_snapshot` (what ``changehub snapshot`` calls) writes
``pg_logical_emit_message(true, 'changehub.signal', '{"source": …, "tables": […]}')`` into
the database; the running source sees it in its stream, in commit order. A table added to
``tables`` in the config is queued by the source itself on its next start. Needs
PostgreSQL 14 or newer (logical messages in pgoutput).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Final

import orjson
import psycopg

from connectors.source.postgres.catalog import TableInfo, catalog_error, connect
from connectors.source.postgres.checkpoint import IncrementalProgress
from connectors.source.postgres.config import PostgresSourceConfig
from connectors.source.postgres.encoding import source_tail
from connectors.source.postgres.pgoutput import Message
from connectors.source.postgres.schema import TableSchema
from connectors.source.postgres.snapshot import TableReader
from connectors.source.postgres.streaming import ChangeStream
from hub.errors import UsageError

__all__ = ["SIGNAL_PREFIX", "WATERMARK_PREFIX", "IncrementalSnapshot", "request_snapshot"]

SIGNAL_PREFIX: Final = "changehub.signal"
WATERMARK_PREFIX: Final = "changehub.watermark"
_EMIT: Final = "SELECT pg_logical_emit_message(true, %s, %s)"
_CONVERSION_FAILS = (ValueError, IndexError, TypeError)

log = logging.getLogger("changehub.source.postgres")


def request_snapshot(config: PostgresSourceConfig, tables: Sequence[str] | None = None) -> None:
    """Ask the running source ``config.name`` to snapshot ``tables`` (default: all) again.

    Works from any process that can connect: the request travels through the database's
    WAL to the source, which acts on it in commit order. Raises :class:`UsageError` for a
    table the source does not capture.
    """
    wanted = list(tables or config.tables)
    unknown = [t for t in wanted if t not in config.tables]
    if unknown:
        raise UsageError(
            f"source {config.name} does not capture {', '.join(unknown)}; it captures "
            f"{', '.join(config.tables)}"
        )
    body = orjson.dumps({"source": config.name, "type": "execute-snapshot", "tables": wanted})
    conn = connect(config.dsn, application_name=f"changehub snapshot {config.name}")
    try:
        conn.execute(_EMIT, (SIGNAL_PREFIX, body.decode()))
    except psycopg.Error as exc:
        raise catalog_error(exc, "sending the snapshot request") from None
    finally:
        conn.close()


class IncrementalSnapshot:
    """The reader thread's side: reacts to signals and watermarks in the stream.

    Not thread-safe; lives in the source's reader thread, next to its :class:`ChangeStream`.
    """

    def __init__(
        self,
        *,
        config: PostgresSourceConfig,
        table: Callable[[str], tuple[TableInfo, TableSchema]],
        clock_ms: Callable[[], int],
    ) -> None:
        self._config = config
        self._table = table
        self._clock_ms = clock_ms
        self._conn: psycopg.Connection[Any] | None = None
        self._window_id: str | None = None  # the chunk in flight
        self._window_open = False
        self._chunk_last: tuple[str, ...] | None = None  # last key of the chunk in flight
        self._chunk_full = False
        self._low_lsn = 0
        self._buffer: dict[bytes | None, bytes] = {}  # the chunk's rows by key, in key order
        self._topic: str | None = None

    # -- from the stream ----------------------------------------------------------------------

    def on_message(self, m: Message, lsn: int, stream: ChangeStream) -> None:
        if m.prefix == SIGNAL_PREFIX:
            self._signal(m, stream)
        elif m.prefix == WATERMARK_PREFIX:
            self._watermark(m, stream)

    def _signal(self, m: Message, stream: ChangeStream) -> None:
        try:
            body = orjson.loads(m.content)
            ours = body.get("source") == self._config.name
            tables = [str(t) for t in body.get("tables", ())]
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            log.warning("ignoring a malformed snapshot signal: %r", m.content[:200])
            return
        if not ours or body.get("type") != "execute-snapshot":
            return
        progress = stream.base.incremental or IncrementalProgress()
        queued = [t for t in tables if t in self._config.tables and t not in progress.pending]
        if not queued:
            return
        log.info("incremental snapshot of %s requested", ", ".join(queued))
        stream.base = stream.base.with_(
            incremental=replace(progress, pending=progress.pending + tuple(queued))
        )
        self.start(stream)

    def _watermark(self, m: Message, stream: ChangeStream) -> None:
        kind, _, window = m.content.decode("ascii", "replace").partition(":")
        if window != self._window_id:
            return  # from a window before a restart: read again since
        if kind == "low":
            # From here to the high watermark, streamed events replace the rows read.
            self._window_open = True
            txn = stream.txn
            self._low_lsn = txn.commit_lsn if txn is not None else m.lsn
            stream.window = self._buffer
            stream.window_topic = self._topic
        elif kind == "high" and self._window_open:
            self._close(stream)
            self.start(stream)

    # -- chunks -------------------------------------------------------------------------------

    def start(self, stream: ChangeStream) -> None:
        """Begin the next chunk if there is work and no window is in flight."""
        if self._window_id is not None:
            return
        while True:
            progress = stream.base.incremental
            if progress is None or not progress.pending:
                return
            name = progress.pending[0]
            info, schema = self._table(name)
            if schema.key is None:
                log.warning("cannot snapshot %s incrementally: it has no key; skipped", name)
                self._finish_table(stream, progress)
                continue
            break
        window = uuid.uuid4().hex
        conn = self._connection()
        reader = TableReader(conn, info, schema)
        buffer: dict[bytes | None, bytes] = {}
        last = None
        try:
            conn.execute(_EMIT, (WATERMARK_PREFIX, f"low:{window}"))
            for values in reader.rows(progress.after, self._config.snapshot_chunk_size):
                try:
                    parts = [
                        null if v is None else prefix + (v if conv is None else conv(v))
                        for (prefix, conv, null), v in zip(schema.json_columns, values, strict=True)
                    ]
                except _CONVERSION_FAILS:
                    schema.row(values)  # raises SchemaError naming the column
                    raise
                buffer[schema.key_json(parts)] = schema.row_json(parts)
                last = values
            conn.execute(_EMIT, (WATERMARK_PREFIX, f"high:{window}"))
        except psycopg.Error as exc:
            raise catalog_error(exc, f"reading a chunk of {name}") from None
        self._window_id = window
        self._window_open = False
        self._chunk_full = len(buffer) >= self._config.snapshot_chunk_size
        self._chunk_last = None if last is None else reader.key_text(last)
        self._buffer = buffer
        self._topic = schema.topic

    def _close(self, stream: ChangeStream) -> None:
        """The high watermark: emit what no streamed event replaced, move past the chunk."""
        progress = stream.base.incremental
        assert progress is not None and progress.pending
        name = progress.pending[0]
        _, schema = self._table(name)
        buffer, self._buffer = self._buffer, {}
        stream.tick()
        tail = source_tail(self._low_lsn, None, self._clock_ms(), b"incremental")
        for key, row_json in buffer.items():
            stream.emit_read(schema, row_json, key, self._low_lsn, tail)
        rows = progress.rows + len(buffer)
        stream.window = None
        stream.window_topic = None
        self._window_id = None
        if self._chunk_full and self._chunk_last is not None:
            stream.base = stream.base.with_(
                incremental=replace(progress, after=self._chunk_last, rows=rows)
            )
        else:
            self._finish_table(stream, replace(progress, rows=rows))

    def _finish_table(self, stream: ChangeStream, progress: IncrementalProgress) -> None:
        name = progress.pending[0]
        log.info("incremental snapshot of %s finished (%d rows emitted)", name, progress.rows)
        rest = progress.pending[1:]
        stream.base = stream.base.with_(incremental=IncrementalProgress(rest) if rest else None)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(
                self._config.dsn, application_name=f"changehub {self._config.name} incremental"
            )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
