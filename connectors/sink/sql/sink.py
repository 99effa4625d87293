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
Tombstones are ignored; deletes come from the ``d`` events before them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from connectors.api import ConnectorContext, Offsets, Sink, SinkConfig
from connectors.sink.sql.changes import BadRecordError, Change, TableBatch, decode
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
from connectors.sink.sql.upsert import delete_keys, upsert_rows
from connectors.sqldb import SharedEngine, describe_table, translate
from hub.errors import FatalError, SchemaError
from log.api import LogRecord

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

    def start(self, resume: Offsets) -> Offsets:
        self._db = SharedEngine(self.config.url, f"sql sink {self.config.name!r}")
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
        for record in records:
            tp = record.tp
            if record.offset < self._next.get(tp, 0):
                continue  # already in the target: a replay from an older hub commit
            try:
                self._add(record)
            except (BadRecordError, UnfitValueError) as exc:
                # Raises unless errors are tolerated: then the offset must not move past it.
                self.context.dead_letter(record, str(exc))
            self._next[tp] = record.offset + 1

    def flush(self) -> Offsets:
        moved = {tp: o for tp, o in self._next.items() if o != self._durable.get(tp)}
        if not moved and not self._batches:
            return dict(self._durable)
        # On failure the batch stays for a retry; each table is described afresh in
        # _prepare, so DDL the database rolled back is planned again. All DDL comes before
        # any row: MySQL/MariaDB commit the transaction at each CREATE/ALTER TABLE, which
        # then commits nothing but DDL, and rows and offsets still commit together.
        with self._transaction("writing a batch") as conn:
            tables = {name: self._prepare(conn, name, batch)
                      for name, batch in self._batches.items()}
            for name, batch in self._batches.items():
                table = tables[name]
                if table is not None:
                    self._write(conn, name, table, batch)
            store_offsets(conn, self.config.name, moved)
        self._batches.clear()
        self._durable.update(moved)
        return dict(self._durable)

    def stop(self) -> None:
        if self._db is not None:
            self._db.close()

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

    def _add(self, record: LogRecord) -> None:
        change = decode(record, self.config.table, self._history is not None)
        if change is None:
            return
        if self._history is not None:
            self._add_history(record, change)
            return
        batch = self._batches.get(change.table)
        if batch is None:
            batch = self._batches[change.table] = TableBatch()
        assert isinstance(batch, TableBatch)
        if change.kind == "truncate":
            batch.add(change)
            return
        shape = self._shape(change)
        if change.kind == "upsert" and change.row is not None:
            row: dict[str, Any] | None = shape.fit(change.row)
            assert row is not None and change.key is not None
            key = {k: row[k] for k in change.key}
        else:
            row, key = None, shape.fit(change.key or {})
        batch.add(change._replace(key=key, row=row), row)

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

    def _prepare(
        self, conn: Connection, name: TableName, batch: TableBatch | HistoryBatch
    ) -> sa.Table | None:
        """Create or widen the table; the Table to write, None when there is nothing to do."""
        schema, table_name = name
        shape = self._shapes.get(name)
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
        delete_keys(conn, table, shape.key, list(batch.deletes.values()))
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in batch.upserts.values():
            groups.setdefault(tuple(row), []).append(row)
        for rows in groups.values():
            upsert_rows(conn, table, shape.key, rows, has_primary_key=shape.upsertable)

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Connection]:
        if self._db is None:
            raise FatalError(f"sql sink {self.config.name!r} is used before start()")
        try:
            with self._db.use() as engine, engine.begin() as conn:
                yield conn
        except sa_exc.SQLAlchemyError as exc:
            raise translate(
                exc, doing=f"{doing} for sink {self.config.name!r}", url=self.config.url
            ) from exc

