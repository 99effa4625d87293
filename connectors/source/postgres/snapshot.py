"""The initial snapshot: every row of the captured tables as ``r`` events, in key chunks.

Consistency with the stream: the replication slot is created with an exported snapshot
(``CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT``) and the tables are read in a REPEATABLE READ
transaction that imports it (``SET TRANSACTION SNAPSHOT``). That snapshot sees exactly the
transactions committed before the slot's consistent point, and the slot streams exactly
those committed from it on: no gap, no duplicate. Such a snapshot is *exact*.

Chunks: each table is read in key order with one ``COPY (SELECT … ORDER BY k1, k2) TO STDOUT``
in text form — the same text pgoutput sends, so one type mapping serves both, and the
fastest way out of Postgres — and cut here into chunks of ``snapshot_chunk_size`` rows. Each
chunk is one batch whose checkpoint holds the chunk's last key, so memory stays flat
whatever the table's size, and a resumed snapshot continues with keyset pagination
(``WHERE (k1, k2) > (…)``, on the key's index).

Large tables (``PROCESS_MIN_BYTES`` of heap or more) are read and encoded by a worker process
(``snapshot_process.py``) importing this transaction's snapshot, so that the hub's process
only appends, the chunks coming laid out as the log's columns: in one process both sit
under one GIL. While the worker starts,
their chunks are read here, one ``LIMIT`` query each, and the worker goes on from the last
key. Both ways make the same bytes (an integration test compares them).

Resuming: an exported snapshot dies with the connection that exported it, so a snapshot
interrupted by a crash cannot continue in it. It resumes from the chunk after the last one
in the log, in a new snapshot, while the slot (never confirmed past the consistent point
during a snapshot) still holds every change since. The remaining rows then show a later
state than the consistent point, and the stream replays the changes in between: replaying
the log still ends in the table's state (each key's last event is its latest state), and
``commit_lsn`` on the rows is the position taken *before* the new snapshot, so a sink that
versions by ``(commit_lsn, total_order)`` ignores the replayed changes the rows contain
already. Mode ``always`` reads every start in such a new snapshot too. Tables without a key
cannot be paged: they are read in one pass and restart from their beginning after a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import sql

from connectors.api import SourceColumns, SourceRecord
from connectors.source.postgres.catalog import TableInfo, catalog_error, quote_table
from connectors.source.postgres.checkpoint import SnapshotProgress
from connectors.source.postgres.columnar import ChunkEncoder, last_line, parse_copy_line
from connectors.source.postgres.copy_out import CopyOut
from connectors.source.postgres.encoding import READ_HEAD as _READ_HEAD
from connectors.source.postgres.encoding import read_suffix, source_tail
from connectors.source.postgres.schema import TableSchema
from connectors.source.postgres.snapshot_process import (
    REQUESTS_AHEAD,
    ChunkProcess,
    TableSpec,
    conninfo_of,
)
from log.batch import RecordColumns

__all__ = ["SnapshotChunk", "TableReader", "parse_copy_line", "read_snapshot"]

_CONVERSION_FAILS = (ValueError, IndexError, TypeError)

# Tables whose heap is at least this large are read and encoded by a worker process
# (snapshot_process.py), on the second core. Starting one takes a few tenths of a second,
# which a smaller table would not win back.
PROCESS_MIN_BYTES = 32 * 1024 * 1024
# While the worker starts, read the table's first chunks here (tests turn it off to have
# the worker read every chunk).
READ_WHILE_WORKER_STARTS = True

# One chunk's records (laid out as the log's columns when the worker made them) and the text
# of its last row's key (None: keyless, or no rows).
_Records = list[SourceRecord] | SourceColumns
_Chunk = tuple[_Records, tuple[str, ...] | None]


@dataclass(frozen=True)
class SnapshotChunk:
    records: _Records
    progress: SnapshotProgress
    table: str
    table_rows: int  # rows of this table read so far
    done: bool  # the last chunk of the whole snapshot


class TableReader:
    """Reads one table's rows after a key, chunk by chunk, inside the caller's transaction."""

    def __init__(self, conn: psycopg.Connection[Any], info: TableInfo, schema: TableSchema) -> None:
        self._conn = conn
        self._info = info
        self._schema = schema
        self._columns = sql.SQL(", ").join(sql.Identifier(c) for c in info.columns)
        self._table = quote_table(info.schema, info.name)
        key = schema.key
        self._key_index: list[int] | None = None
        self._key_types: list[str] = []
        if key is not None:
            self._key_index = [info.columns.index(k) for k in key]
            self._key_types = [info.type_names[i] for i in self._key_index]

    @property
    def pageable(self) -> bool:
        return self._key_index is not None

    def query(self, after: Sequence[str] | None, limit: int | None) -> sql.Composed:
        """``SELECT`` of the next chunk: rows after key ``after`` (text values), in key order."""
        parts: list[sql.Composable] = [
            sql.SQL("SELECT {} FROM {}").format(self._columns, self._table)
        ]
        if self._key_index is not None:
            assert self._schema.key is not None
            key_cols = sql.SQL(", ").join(sql.Identifier(k) for k in self._schema.key)
            if after is not None:
                literals = sql.SQL(", ").join(
                    sql.SQL("{}::{}").format(sql.Literal(v), sql.SQL(t))
                    for v, t in zip(after, self._key_types, strict=True)
                )
                parts.append(sql.SQL(" WHERE ({}) > ({})").format(key_cols, literals))
            parts.append(sql.SQL(" ORDER BY {}").format(key_cols))
            if limit is not None:
                parts.append(sql.SQL(" LIMIT {}").format(sql.Literal(limit)))
        return sql.Composed(parts)

    def rows(self, after: Sequence[str] | None, limit: int | None) -> Iterator[list[bytes | None]]:
        """The rows of one chunk as text values (all rows if the table has no key)."""
        copy = self.open(after, limit)
        try:
            while lines := self.read(copy, 1000):
                for line in lines:
                    yield parse_copy_line(bytes(line)[:-1])
        finally:
            self.close(copy)

    def copy_query(self, after: Sequence[str] | None, limit: int | None = None) -> bytes:
        """``COPY (…) TO STDOUT`` of the rows after key ``after``, in key order."""
        return sql.SQL("COPY ({}) TO STDOUT").format(self.query(after, limit)).as_bytes(self._conn)

    def open(self, after: Sequence[str] | None, limit: int | None = None) -> CopyOut:
        """Start reading the rows after key ``after`` (all rows if the table has no key), in
        key order, as COPY text lines."""
        try:
            return CopyOut(self._conn, self.copy_query(after, limit))
        except psycopg.Error as exc:
            raise catalog_error(exc, f"reading {self._info.qualified} for the snapshot") from None

    def close(self, copy: CopyOut) -> None:
        """Stop ``copy`` if the caller did not read it to the end."""
        try:
            copy.close()
        except psycopg.Error as exc:
            raise catalog_error(exc, f"stopping the read of {self._info.qualified}") from None

    def read(self, copy: CopyOut, n: int) -> list[memoryview]:
        """The next ``n`` rows of ``copy`` (fewer at its end), each line with its newline."""
        try:
            return copy.read(n)
        except psycopg.Error as exc:
            raise catalog_error(exc, f"reading {self._info.qualified} for the snapshot") from None

    def read_block(self, copy: CopyOut, n: int) -> tuple[bytes, int]:
        """The next ``n`` rows of ``copy`` (fewer at its end) as one block of lines, and how
        many."""
        try:
            return copy.read_block(n)
        except psycopg.Error as exc:
            raise catalog_error(exc, f"reading {self._info.qualified} for the snapshot") from None

    def key_text(self, row: Sequence[bytes | None]) -> tuple[str, ...]:
        assert self._key_index is not None
        out = []
        for i in self._key_index:
            v = row[i]
            assert isinstance(v, bytes), "key columns are NOT NULL"
            out.append(v.decode("utf-8"))
        return tuple(out)


def read_snapshot(
    conn: psycopg.Connection[Any],
    *,
    progress: SnapshotProgress,
    tables: dict[str, tuple[TableInfo, TableSchema]],
    chunk_size: int,
    clock_ms: Callable[[], int],
    process_min_bytes: int | None = None,
    read_while_starting: bool | None = None,
) -> Iterator[SnapshotChunk]:
    """Chunks from ``progress`` on, until every pending table is read.

    ``conn`` must be in the snapshot's transaction already. The last chunk (``done``) may be
    empty; its progress has nothing pending. Tables of ``process_min_bytes`` or more
    (default :data:`PROCESS_MIN_BYTES`) are read by a worker process in the same snapshot;
    while it starts (about half a second of imports), their chunks are read here, one query
    each, unless ``read_while_starting`` (default :data:`READ_WHILE_WORKER_STARTS`) is False.
    """
    threshold = PROCESS_MIN_BYTES if process_min_bytes is None else process_min_bytes
    if read_while_starting is None:
        read_while_starting = READ_WHILE_WORKER_STARTS
    lsn = progress.lsn  # the snapshot's position: the same for every chunk
    tail = source_tail(lsn, None, clock_ms(), b"true")
    # Rows in key order straight from the key's index: a sort of the whole table first would
    # hold back the first row (and spill to disk) on a large table.
    try:
        conn.execute("SET LOCAL enable_sort = off")
    except psycopg.Error as exc:
        raise catalog_error(exc, "setting up the snapshot") from None
    worker: ChunkProcess | None = None
    try:
        while progress.pending:
            name = progress.pending[0]
            info, schema = tables[name]
            reader = TableReader(conn, info, schema)
            pageable = reader.pageable

            def suffix(now: int, head: bytes = schema.source_head) -> bytes:
                # Every read of a chunk shares all of its envelope but the row and key.
                return read_suffix(now, head, lsn, tail)

            chunks: Iterator[_Chunk]
            if _heap_bytes(conn, info) >= threshold:
                if worker is None:
                    worker = _start_worker(conn)
                chunks = _chunks_by_worker(
                    worker,
                    reader,
                    schema,
                    progress.after,
                    chunk_size,
                    clock_ms,
                    suffix,
                    read_while_starting=read_while_starting,
                )
            else:
                chunks = _chunks_here(reader, schema, progress.after, chunk_size, clock_ms, suffix)
            table_rows = 0
            count = 0
            records: _Records = []
            # One COPY for the rest of the table, in key order, cut into chunks: no round
            # trip per chunk, and each chunk's checkpoint still names its last key.
            for records, last_key in chunks:
                count = len(records)
                table_rows += count
                if count < chunk_size:
                    break
                # A keyless table cannot resume mid-way: its chunks keep `after` unset.
                after = last_key if pageable else None
                progress = replace(progress, after=after, rows=progress.rows + count)
                yield SnapshotChunk(records, progress, name, table_rows, done=False)
            rest = progress.pending[1:]
            progress = replace(progress, pending=rest, after=None, rows=progress.rows + count)
            yield SnapshotChunk(records, progress, name, table_rows, done=not rest)
    finally:
        if worker is not None:
            worker.close()


def _chunks_here(
    reader: TableReader,
    schema: TableSchema,
    after: Sequence[str] | None,
    chunk_size: int,
    clock_ms: Callable[[], int],
    suffix: Callable[[int], bytes],
) -> Iterator[_Chunk]:
    """A table's chunks read and encoded on this thread; the last has fewer than
    ``chunk_size`` rows (maybe none)."""
    encoder = ChunkEncoder(schema)
    copy = reader.open(after)
    try:
        while True:
            block, count = reader.read_block(copy, chunk_size)
            yield _encode(encoder, reader, schema, block, count, clock_ms, suffix)
            if count < chunk_size:
                return
    finally:
        reader.close(copy)


def _encode(
    encoder: ChunkEncoder,
    reader: TableReader,
    schema: TableSchema,
    block: bytes,
    count: int,
    clock_ms: Callable[[], int],
    suffix: Callable[[int], bytes],
) -> _Chunk:
    """One chunk's records, laid out as the log's columns as the worker's are, and its last
    key; a value that does not convert is named by the row path's SchemaError (column and
    value), not the columnar encoder's bare error."""
    now = clock_ms()
    try:
        (klens, keys), (vlens, values) = encoder.laid_out(block, count, _READ_HEAD, suffix(now))
    except _CONVERSION_FAILS:
        for line in block.split(b"\n")[:-1]:
            schema.row(parse_copy_line(line))
        raise
    columns = RecordColumns(klens, bytes(keys), vlens, bytes(values), now)
    last = reader.key_text(parse_copy_line(last_line(block))) if count and reader.pageable else None
    return SourceColumns(schema.topic, columns), last


def _chunks_by_worker(
    worker: ChunkProcess,
    reader: TableReader,
    schema: TableSchema,
    after: Sequence[str] | None,
    chunk_size: int,
    clock_ms: Callable[[], int],
    suffix: Callable[[int], bytes],
    *,
    read_while_starting: bool,
) -> Iterator[_Chunk]:
    """A table's chunks read and encoded by ``worker``, ``REQUESTS_AHEAD`` ahead: it reads and
    encodes the next chunk while this process appends the one before. Until the worker has
    started, chunks of a keyed table are read here, one ``LIMIT`` query each, so its start
    costs no time."""
    encoder = ChunkEncoder(schema)
    while read_while_starting and reader.pageable and not worker.ready():
        copy = reader.open(after, chunk_size)
        block, count = reader.read_block(copy, chunk_size)
        reader.read_block(copy, 1)  # the end of this COPY: the connection is free again
        records, last = _encode(encoder, reader, schema, block, count, clock_ms, suffix)
        yield records, last
        if count < chunk_size:
            return
        after = last

    def ask() -> None:
        now = clock_ms()
        worker.request(chunk_size, _READ_HEAD, suffix(now), now)

    worker.open_table(TableSpec.of(schema, reader.copy_query(after)))
    for _ in range(REQUESTS_AHEAD):
        ask()
    while True:
        chunk = worker.receive(schema.topic)
        done = len(chunk.records) < chunk_size
        if not done:
            ask()
        yield chunk.records, chunk.last_key
        if done:
            return


def _heap_bytes(conn: psycopg.Connection[Any], info: TableInfo) -> int:
    try:
        row = conn.execute("SELECT pg_relation_size(%s)", (info.oid,)).fetchone()
    except psycopg.Error as exc:
        raise catalog_error(exc, f"sizing {info.qualified} for the snapshot") from None
    return int(row[0]) if row is not None and row[0] is not None else 0


def _start_worker(conn: psycopg.Connection[Any]) -> ChunkProcess:
    """A worker process reading in this transaction's snapshot."""
    try:
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    except psycopg.Error as exc:
        raise catalog_error(exc, "exporting the snapshot to its worker process") from None
    assert row is not None
    return ChunkProcess(conninfo_of(conn), str(row[0]))
