"""The ``sql`` sink: change events into tables of any SQL database, through SQLAlchemy.

``write`` decodes each record (:mod:`.changes`), picks its table (:mod:`.naming`), fits its
values to the table's columns (:mod:`.evolution`) and collapses the batch to the last state
per key. ``flush`` then applies the batch in ONE transaction: create or widen every table
first (DDL, which MySQL commits implicitly, so it must precede every row), then per table
empty it on a truncate, delete keys, upsert rows (:mod:`.upsert`, one batched statement per
kind), and store the sink's offsets in ``_changehub_offsets`` (:mod:`.offsets`). ``start``
returns the stored offsets, so a replay after a crash starts exactly where the target is,
and records below them are skipped if they come anyway.

With ``mode: history`` the tables are history tables instead (:mod:`.history`): each
change appends a row with its op, source position and time, keyed by its log position; with
``history: {scd2: true}`` versions are closed and opened as a type-2 slowly changing
dimension. The same transaction carries the rows, the closes and the offsets.

A record that is not a change event, or whose values cannot fit the table, goes to
``context.dead_letter`` (which fails the sink unless ``errors.tolerance: all``).
Tombstones are ignored; deletes come from the ``d`` events before them. A value the database
itself refuses at flush time (a constraint, a number out of its column's range) fails the
flush's transaction; with ``errors.tolerance: all`` the flush then finds the record(s) to
blame by bisecting (:meth:`SqlSink._reject`), sends them to the dead letters and writes the
rest.

DuckDB lets one process at a time open a database file, so its connections are not pooled
(:func:`connectors.sqldb.engine_for`). Opening the file costs a checkpoint on each close,
which at 5,000 rows a flush took ten times the MERGE itself; so while the sink is catching up
(a flush of a full batch: ``max_batch_records`` or ``max_batch_bytes``) its connection stays
open for the next flush, and the first flush of a batch that is not full, ``stop``, or a
timer when no flush came for ``flush_interval`` (at least a second: the hub flushes only
when it has records, and a backlog may end on a full batch) closes it, freeing the file for
other programs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from connectors.api import ConnectorContext, Offsets, Sink, SinkConfig
from connectors.sink.sql.changes import BadRecordError, Change, TableBatch, decode
from connectors.sink.sql.columnar import Decoder
from connectors.sink.sql.config import SqlSinkConfig
from connectors.sink.sql.evolution import (
    Kind,
    TableShape,
    UnfitValueError,
    add_columns,
    create_table,
    table_object,
)
from connectors.sink.sql.history import (
    HISTORY_KEY,
    HistoryBatch,
    apply_history,
    history_columns,
)
from connectors.sink.sql.naming import TableName
from connectors.sink.sql.offsets import ensure_offsets_table, load_offsets, store_offsets
from connectors.sink.sql.upsert import delete_keys, upsert_rows, upsert_table
from connectors.sqldb import SharedEngine, describe_table, is_refused, translate
from hub.errors import FatalError, SchemaError
from log.api import LogRecord, TopicPartition

__all__ = ["SqlSink"]


class SqlSink(Sink[SqlSinkConfig]):
    """See the module doc. ``stop`` may come from any thread; the rest from one."""

    config_model: ClassVar[type[SinkConfig]] = SqlSinkConfig

    def __init__(self, config: SqlSinkConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self._db: SharedEngine | None = None
        self._durable: Offsets = {}  # stored in the target
        self._next: Offsets = {}  # after the records written so far
        self._batches: dict[TableName, TableBatch | HistoryBatch] = {}
        self._shapes: dict[TableName, TableShape] = {}
        self._event_keys: dict[TableName, tuple[str, ...]] = {}  # history tables' event keys
        self._history: dict[str, Kind] | None = (
            history_columns(config.history.scd2) if config.mode == "history" else None
        )
        self._added: list[LogRecord] = []  # records in self._batches, in log order
        self._pending = self._pending_bytes = 0  # records (and bytes) since the last flush
        # DuckDB: the connection kept open across the flushes of a catch-up (module doc)
        self._held: Connection | None = None
        self._held_lock = threading.Lock()
        # Tables whose shape is known to match the database: described, created or widened
        # in transactions committed on the connection held since (only this sink writes the
        # file while it holds it), so _prepare need not describe them again (two catalog
        # queries, ~4 ms a flush on DuckDB). Emptied whenever that connection is let go or a
        # transaction fails (rolled-back DDL).
        self._trusted: set[TableName] = set()
        self._stopping = False
        self._idle: threading.Timer | None = None  # closes the held connection when idle
        self._columnar = Decoder()

    def start(self, resume: Offsets) -> Offsets:
        self._db = SharedEngine(self.config.url, f"sql sink {self.config.name!r}")
        self._stopping = False
        with self._transaction("preparing the offsets table") as conn:
            ensure_offsets_table(conn)
            self._durable = load_offsets(conn, self.config.name)
        self._next = dict(self._durable)
        self.context.logger.info(
            "sql sink %s: target %s holds offsets %s",
            self.config.name,
            self._db.url,
            {str(tp): o for tp, o in sorted(self._durable.items())} or "none yet",
        )
        # Only the partitions the hub asked for: a topic the sink no longer subscribes to may
        # still have a row in the offsets table. Records of partitions the hub adds later are
        # checked against the stored offsets in write().
        return {tp: self._durable.get(tp, offset) for tp, offset in resume.items()}

    def write(self, records: Sequence[LogRecord]) -> None:
        if self._history is None and len(records) >= _COLUMNAR_MIN and self._write_columnar(
                records):
            return
        for record in records:
            tp = record.tp
            if record.offset < self._next.get(tp, 0):
                continue  # already in the target: a replay from an older hub commit
            self._pending += 1
            self._pending_bytes += len(record.value or b"")
            try:
                if self._add(record):
                    self._added.append(record)
            except (BadRecordError, UnfitValueError) as exc:
                # Raises unless errors are tolerated: then the offset must not move past it.
                self.context.dead_letter(record, str(exc))
            self._next[tp] = record.offset + 1

    def flush(self) -> Offsets:
        moved = {tp: o for tp, o in self._next.items() if o != self._durable.get(tp)}
        if not moved and not self._batches:
            self._release()
            return dict(self._durable)
        # a full batch: the hub is catching up, and the next flush follows at once
        keep = (self._pending >= self.config.max_batch_records
                or self._pending_bytes >= self.config.max_batch_bytes)
        try:
            self._apply(self._batches, moved, keep)
        except FatalError as exc:
            if not (self.config.errors.tolerance == "all" and _refused(exc) and self._added):
                raise
            self._reject(moved, keep)
        self._batches.clear()
        self._added.clear()
        self._pending = self._pending_bytes = 0
        self._durable.update(moved)
        return dict(self._durable)

    def stop(self) -> None:
        with self._held_lock:
            self._stopping = True
            held, self._held = self._held, None
            idle, self._idle = self._idle, None
        if idle is not None:
            idle.cancel()
        if held is not None:
            held.close()
        if self._db is not None:
            self._db.close()
        self._columnar.close()

    def assign(self, resume: Offsets) -> Offsets:
        """Partitions added while running: their offsets as the target stores them now (the
        process that held them before wrote them there)."""
        with self._transaction("reading the offsets of added partitions") as conn:
            stored = load_offsets(conn, self.config.name)
        out: Offsets = {}
        for tp, offset in resume.items():
            out[tp] = stored.get(tp, offset)
            if tp in stored:
                self._durable[tp] = self._next[tp] = stored[tp]
            else:
                self._durable.pop(tp, None)
                self._next.pop(tp, None)
        return out

    def revoke(self, partitions: Sequence[TopicPartition]) -> bool:
        # flushed: no batch holds their rows; another process moves their offsets on now
        for tp in partitions:
            self._durable.pop(tp, None)
            self._next.pop(tp, None)
        return True

    def rewind(self, offsets: Offsets) -> Offsets:
        """Move the offsets stored in the target, so the replay is applied, not skipped."""
        self._db = SharedEngine(self.config.url, f"sql sink {self.config.name!r}")
        try:
            with self._transaction("rewinding the stored offsets") as conn:
                ensure_offsets_table(conn)
                store_offsets(conn, self.config.name, dict(offsets))
        finally:
            self.stop()
        return dict(offsets)

    # -- write: records into per-table batches ----------------------------------------------

    def _write_columnar(self, records: Sequence[LogRecord]) -> bool:
        """Add ``records`` decoded as a whole (:mod:`.columnar`); False (nothing done) when
        any of them needs the per-record path."""
        nexts = self._next
        last: dict[tuple[str, int], int] = {}  # partition -> its last offset in records
        for r in records:
            last[r.topic, r.partition] = r.offset
        parts = {tp: TopicPartition(*tp) for tp in last}
        if all(records[0].offset >= nexts.get(tp, 0) for tp in parts.values()) and len(
                parts) == 1:
            fresh: Sequence[LogRecord] = records  # the common case: nothing replayed
        else:
            fresh = [r for r in records if r.offset >= nexts.get(r.tp, 0)]
        if any(r.value is None for r in fresh):
            return False  # tombstones: rare enough to leave to the per-record path
        head = self._columnar.first(fresh[0], self.config.table) if fresh else None
        if head is None:
            return False
        if head.table not in self._shapes:
            # The table's own columns decide the kinds: read it first, as the per-record
            # path would for this record (which it would not refuse before reading it).
            self._shape(Change(head.table, "upsert", dict.fromkeys(head.key)))
        decoded = self._columnar.decode(fresh, self.config.table, self._shapes)
        if decoded is None:
            return False
        self._shapes[decoded.table].columns.update(decoded.new)
        batch = self._batches.get(decoded.table)
        if batch is None:
            batch = self._batches[decoded.table] = TableBatch()
        assert isinstance(batch, TableBatch)
        batch.add_columnar(decoded.rows, decoded.key)
        self._added.extend(fresh)
        self._pending += len(fresh)
        self._pending_bytes += sum(map(len, [r.value or b"" for r in fresh]))
        for tp, offset in last.items():
            nexts[parts[tp]] = offset + 1
        return True

    def _add(self, record: LogRecord) -> bool:
        """Add ``record`` to the batches; False for a tombstone (nothing to add)."""
        change = decode(record, self.config.table, self._history is not None)
        if change is None:
            return False
        if self._history is not None:
            self._add_history(record, change)
            return True
        batch = self._batches.get(change.table)
        if batch is None:
            batch = self._batches[change.table] = TableBatch()
        assert isinstance(batch, TableBatch)
        if change.kind == "truncate":
            batch.add(change)
            return True
        shape = self._shape(change)
        if change.kind == "upsert" and change.row is not None:
            row: dict[str, Any] | None = shape.fit(change.row)
            assert row is not None and change.key is not None
            key = {k: row[k] for k in change.key}
        else:
            row, key = None, shape.fit(change.key or {})
        batch.add(change._replace(key=key, row=row), row)
        return True

    def _add_history(self, record: LogRecord, change: Change) -> None:
        scd2 = self.config.history.scd2
        batch = self._batches.get(change.table)
        if batch is None:
            batch = self._batches[change.table] = HistoryBatch(scd2)
        assert isinstance(batch, HistoryBatch)
        if change.kind == "truncate":
            batch.add(record, change, None)
            return
        shape = self._shape(change)
        # An SCD2 delete only closes a version: its before image is not stored.
        image = change.key if scd2 and change.kind == "delete" else change.row
        data = shape.fit(image or {})
        key = {k: data[k] for k in change.key or {}}
        known = self._event_keys.setdefault(change.table, tuple(key))
        if known != tuple(key):
            raise UnfitValueError(
                f"history table {shape.name!r} follows key ({', '.join(known)}) but this "
                f"event's key is ({', '.join(key)})"
            )
        batch.add(record, change._replace(key=key, row=data), data)

    def _shape(self, change: Change) -> TableShape:
        assert change.key is not None
        key = HISTORY_KEY if self._history is not None else tuple(change.key)
        shape = self._shapes.get(change.table)
        if shape is None:
            schema, name = change.table
            with self._transaction(f"reading table {name}") as conn:
                described = describe_table(conn, schema, name)
            try:
                shape = TableShape.of(name, key, described)
            except UnfitValueError as exc:
                raise SchemaError(str(exc)) from None
            for column, kind in (self._history or {}).items():
                shape.columns.setdefault(column, kind)
            self._shapes[change.table] = shape
        elif shape.key != key:
            raise UnfitValueError(
                f"table {shape.name!r} is keyed by ({', '.join(shape.key)}) but this event's "
                f"key is ({', '.join(key)})"
            )
        return shape

    # -- flush: batches into tables ---------------------------------------------------------

    def _apply(self, batches: dict[TableName, TableBatch | HistoryBatch], moved: Offsets,
               keep: bool, *, probe: bool = False) -> None:
        """Write ``batches`` and store ``moved`` in one transaction (``probe``: roll it back,
        raising _ProbeFitsError when everything went in)."""
        # On failure the batch stays for a retry; each table is described afresh in
        # _prepare, so DDL the database rolled back is planned again. All DDL comes before
        # any row: MySQL/MariaDB commit the transaction at each CREATE/ALTER TABLE, which
        # then commits nothing but DDL, and rows and offsets still commit together.
        with self._transaction("writing a batch", keep) as conn:
            tables = {name: self._prepare(conn, name, batch) for name, batch in batches.items()}
            for name, batch in batches.items():
                table = tables[name]
                if table is not None:
                    self._write(conn, name, table, batch)
            if probe:
                raise _ProbeFitsError  # rolls the transaction back
            store_offsets(conn, self.config.name, moved)
        if self._held is not None:  # committed, and the connection is kept
            self._trusted.update(n for n, t in tables.items() if t is not None)

    def _reject(self, moved: Offsets, keep: bool) -> None:
        """The database refused the batch: find the records it refuses, send them to the
        dead letters, and write the others (with ``moved``) in one transaction.

        Records are added to an empty batch in log order until the batch fails: the prefix
        of the batch that still fits is found by bisection (each probe a transaction rolled
        back), and the record after it is refused. Found against the records before it, as
        the flush would have applied them, so an earlier record of the same key still
        lands; repeated until the rest goes in.
        """
        records = list(self._added)
        while True:
            fits, fails = 0, len(records)  # the prefix that fits, the one that fails
            error: FatalError | None = None
            while fails - fits > 1:
                middle = (fits + fails) // 2
                refused = self._probe(records[:middle], keep)
                if refused is None:
                    fits = middle
                else:
                    fails, error = middle, refused
            if error is None:
                error = self._probe(records[:fails], keep)
            if error is not None:
                bad = records.pop(fails - 1)
                self.context.dead_letter(bad, f"the target database refused it: {error}")
            try:
                self._apply(self._rebuild(records), moved, keep)
                return
            except FatalError as exc:
                if not (_refused(exc) and records):
                    raise

    def _probe(self, records: list[LogRecord], keep: bool) -> FatalError | None:
        """Why the database refuses ``records`` as one batch, None when it takes them."""
        try:
            self._apply(self._rebuild(records), {}, keep, probe=True)
        except _ProbeFitsError:
            return None
        except FatalError as exc:
            if _refused(exc):
                return exc
            raise
        return None

    def _rebuild(self, records: list[LogRecord]) -> dict[TableName, TableBatch | HistoryBatch]:
        """The batches of ``records`` alone (each was added once already, so each fits)."""
        batches, self._batches = self._batches, {}
        try:
            for record in records:
                self._add(record)
            return self._batches
        finally:
            self._batches = batches

    def _prepare(
        self, conn: Connection, name: TableName, batch: TableBatch | HistoryBatch
    ) -> sa.Table | None:
        """Create or widen the table; the Table to write, None when there is nothing to do."""
        schema, table_name = name
        shape = self._shapes.get(name)
        if shape is not None and name in self._trusted and shape.exists and not shape.planned(
                conn.dialect.name):
            return table_object(schema, shape)  # as the last transaction left it
        if shape is None:
            # Only truncates were seen for this table: nothing to create, unless the table
            # exists (a history table records the truncate only once it has columns).
            if describe_table(conn, schema, table_name) is None:
                return None
            if isinstance(batch, TableBatch):
                return sa.Table(table_name, sa.MetaData(), schema=schema)
            shape = self._shapes[name] = TableShape(table_name, HISTORY_KEY)
            shape.columns.update(self._history or {})
        try:
            shape.refresh(describe_table(conn, schema, table_name))
        except UnfitValueError as exc:
            raise SchemaError(str(exc)) from None
        if not shape.exists:
            create_table(conn, schema, shape)
            self.context.logger.info(
                "sql sink %s: created table %s (%s)", self.config.name, table_name,
                ", ".join(shape.types),
            )
        else:
            added = add_columns(conn, schema, shape)
            if added:
                self.context.logger.info(
                    "sql sink %s: added column(s) %s to %s", self.config.name, ", ".join(added),
                    table_name,
                )
        return table_object(schema, shape)

    def _write(
        self, conn: Connection, name: TableName, table: sa.Table,
        batch: TableBatch | HistoryBatch,
    ) -> None:
        if isinstance(batch, HistoryBatch):
            apply_history(conn, table, batch)
            return
        if batch.truncate:
            conn.execute(table.delete())
        shape = self._shapes.get(name)
        if shape is None:
            return  # a truncate of a table no event has described yet
        columnar = batch.columnar_rows(shape.key)
        if columnar is not None:
            upsert_table(conn, table, shape.key, columnar, has_primary_key=shape.upsertable)
            return
        delete_keys(conn, table, shape.key, list(batch.deletes.values()))
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in batch.upserts.values():
            groups.setdefault(tuple(row), []).append(row)
        for rows in groups.values():
            upsert_rows(conn, table, shape.key, rows, has_primary_key=shape.upsertable)

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, doing: str, keep: bool | None = None) -> Iterator[Connection]:
        """A transaction on the held connection or a new one; ``keep``: hold the connection
        afterwards (DuckDB only; None: as it was)."""
        if self._db is None:
            raise FatalError(f"sql sink {self.config.name!r} is used before start()")
        try:
            with self._db.use() as engine:
                with self._held_lock:
                    conn, self._held = self._held, None
                was_held = conn is not None
                if conn is None:
                    self._trusted.clear()  # another connection: others may have written
                    conn = engine.connect()
                try:
                    with conn.begin():
                        yield conn
                except BaseException:
                    self._trusted.clear()  # DDL may have been rolled back
                    conn.close()
                    raise
                hold = (was_held if keep is None else keep) and engine.dialect.name == "duckdb"
                with self._held_lock:
                    if hold and not self._stopping:
                        self._held, conn = conn, None
                        self._release_when_idle()
                if conn is not None:
                    self._trusted.clear()
                    conn.close()
        except sa_exc.SQLAlchemyError as exc:
            raise translate(
                exc, doing=f"{doing} for sink {self.config.name!r}", url=self.config.url
            ) from exc

    def _release(self) -> None:
        """Close the held connection (the DuckDB file is free for other programs). Called
        from the sink's thread or the idle timer's: a connection in use is not held."""
        with self._held_lock:
            held, self._held = self._held, None
        if held is not None:
            held.close()

    def _release_when_idle(self) -> None:
        """(Re)start the idle timer; called with _held_lock held."""
        if self._idle is not None:
            self._idle.cancel()
        self._idle = threading.Timer(max(1.0, self.config.flush_interval / 1000), self._release)
        self._idle.daemon = True
        self._idle.start()


# Writes of fewer records go per record: the columnar decode's queries cost ~1 ms each.
_COLUMNAR_MIN = 64


class _ProbeFitsError(Exception):
    """A probe's batch went in; raised to roll its transaction back."""


def _refused(exc: BaseException) -> bool:
    """Whether the database refused a value of the batch (a constraint, a value out of its
    column's range): an error of the data, not of the connection or the statement."""
    return exc.__cause__ is not None and is_refused(exc.__cause__)

