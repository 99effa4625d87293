"""Binlog events into envelopes, cut into chunks that each end with a resumable checkpoint.

:class:`ChangeStream` is fed the events of :mod:`binlog` in order. It keeps the GTID state
and the binlog position of the last complete transaction, turns row events of captured
tables into records (``c``/``u``/``d``; an update that changes the primary key becomes a
delete of the old key and a create of the new one, as Debezium does), and hands out a
:class:`Chunk` at every transaction end with records — or in the middle of a transaction
larger than ``max_events``, with ``skip`` in the checkpoint (see :mod:`checkpoint`).

A transaction whose GTID is already in the state is dropped whole: the server sent it twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from connectors.api import SourceRecord
from connectors.envelope import Op, encode_key, event_records, topic_name
from connectors.source.incremental import IncrementalProgress
from connectors.source.mysql.checkpoint import (
    Checkpoint,
    GtidState,
    Position,
    Replay,
    checkpoint_at,
    position_at,
)
from connectors.source.mysql.history import SchemaHistory
from connectors.source.mysql.incremental_snapshot import IncrementalSnapshot
from connectors.source.mysql.reader import LightDelete, LightUpdate, LightWrite
from connectors.source.mysql.schema import Catalog, RowShape, TableSchema, is_ddl, shape_of
from hub.errors import SchemaError

__all__ = ["ChangeStream", "Chunk"]

# Row events the fast decoder reads (not MySQL's partial JSON updates, a subclass).
_PLAIN = frozenset(
    (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, LightWrite, LightUpdate, LightDelete)
)

_ROW_EVENTS = (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)  # a tuple: built once
# The envelope's op by the row event's class (subclasses: see _op).
_OPS: dict[type, Op] = {
    WriteRowsEvent: "c", LightWrite: "c", UpdateRowsEvent: "u", LightUpdate: "u",
    DeleteRowsEvent: "d", LightDelete: "d",
}  # fmt: skip

_dumps = orjson.dumps
_NON_STR_KEYS = orjson.OPT_NON_STR_KEYS  # as connectors.envelope encodes

_MARIADB_STANDALONE = 1  # GTID flag: a single statement (DDL) with no XID or COMMIT after it


@dataclass(slots=True)
class Chunk:
    records: list[SourceRecord]
    checkpoint: Checkpoint


class ChangeStream:
    """Not thread-safe: the reader thread owns it."""

    def __init__(
        self,
        *,
        source_name: str,
        start: Checkpoint,
        catalog: Catalog,
        captures: Callable[[str, str], bool],
        max_events: int,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        fast_decoder: bool = True,
        signal_table: str | None = None,
        incremental: IncrementalSnapshot | None = None,
        history: SchemaHistory | None = None,
    ) -> None:
        self._name = source_name
        self._catalog = catalog
        self._captures = captures
        self._max_events = max_events
        self._fast = fast_decoder
        self._clock_ms = clock_ms
        self.position = start.position
        self._state = GtidState(start.position.gtid)
        self._skip = start.skip
        self._skip_tx = start.skip_tx
        self.replays: tuple[Replay, ...] = start.replays
        self.incremental: IncrementalProgress | None = start.incremental
        self._signal = None if signal_table is None else tuple(signal_table.split(".", 1))
        self._snapshots = incremental
        self._history = history
        self._file = start.position.file
        self._shapes: dict[int, RowShape | None] = {}
        self._by_signature: dict[tuple[Any, ...], RowShape] = {}
        self.records: list[SourceRecord] = []
        # The transaction being read:
        self.in_transaction = False
        self._tx_gtid: tuple[int, int, int] | None = None  # domain, server, seq (MariaDB)
        self._tx_id: str | None = None
        self._tx_rows = 0  # row changes of this transaction seen (shipped or not)
        self._tx_duplicate = False
        self._tx_standalone = False
        self._tx_replays: tuple[Replay, ...] = ()
        self.changes = 0  # records made, for metrics and benchmarks

    # -- positions ----------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """The checkpoint after everything handed out (mid-transaction: with ``skip``)."""
        history = None if self._history is None else self._history.to_dict()
        if self.in_transaction:
            return checkpoint_at(
                self.position, self._tx_rows, self._tx_id, self.replays, self.incremental, history
            )
        return checkpoint_at(self.position, 0, None, self.replays, self.incremental, history)

    def resume_point(self) -> Checkpoint:
        """Where to reopen after a lost connection: the start of the current transaction,
        leaving out the changes of it already seen (shipped or buffered)."""
        return self.checkpoint()

    def rewind(self) -> None:
        """The connection was reopened at :meth:`resume_point`: its transaction comes again."""
        if self.in_transaction:
            self._skip, self._skip_tx = self._tx_rows, self._tx_id
        self.in_transaction = False

    def idle_position(self, log_pos: int) -> None:
        """A heartbeat between transactions: the file position moved (file+pos resume)."""
        if not self.in_transaction and log_pos and self._file:
            self.position = Position(self.position.gtid, self._file, log_pos)

    # -- events -------------------------------------------------------------------------------

    def handle(self, event: Any) -> Chunk | None:
        """Take one event; return a chunk when one is complete."""
        if isinstance(event, _ROW_EVENTS):
            return self._rows(event)
        if isinstance(event, XidEvent):
            return self._end(event)
        if isinstance(event, MariadbGtidEvent):
            self._begin((event.domain_id, event.server_id, event.gtid_seq_no), event.gtid)
            self._tx_standalone = bool(event.flags & _MARIADB_STANDALONE)
            return None
        if isinstance(event, GtidEvent):
            self._begin(None, str(event.gtid))
            return None
        if isinstance(event, QueryEvent):
            return self._query(event)
        if isinstance(event, RotateEvent):
            self._file = str(event.next_binlog)
            self._shapes.clear()  # table ids are reused after a server restart
            return None
        if isinstance(event, HeartbeatLogEvent):
            return None
        return None

    def _begin(self, gtid: tuple[int, int, int] | None, text: str) -> None:
        if self.in_transaction and self._tx_id == text:
            # The same transaction from its start again: leave out what was seen.
            self._skip, self._skip_tx = self._tx_rows, text
        elif self._skip_tx != text:
            self._skip = 0  # the skip was for another transaction (which never came back)
        self.in_transaction = True
        self._tx_gtid = gtid
        self._tx_id = text
        self._tx_rows = 0
        self._tx_standalone = False
        self._tx_duplicate = gtid is not None and self._state.contains(gtid[0], gtid[2])
        self._tx_replays = ()
        if self.replays:
            dom_seq = None if gtid is None else (gtid[0], gtid[2])
            # A replay ends once the stream passed its position.
            pos = self.position.pos + 1
            self.replays = tuple(
                r for r in self.replays if r.until.covers(dom_seq, self._file, pos)
            )
            self._tx_replays = self.replays

    def _query(self, event: Any) -> Chunk | None:
        query = str(event.query)
        head = query.lstrip()[:8].upper()
        if head.startswith("BEGIN"):
            if not self.in_transaction:
                self._begin(None, f"{self._file}:{event.packet.log_pos}")
            return None
        if head.startswith("COMMIT"):
            return self._end(event)
        if is_ddl(query):
            schema = event.schema.decode() if isinstance(event.schema, bytes) else event.schema
            self._catalog.forget(schema or None)
            self._shapes.clear()
            self._by_signature.clear()  # the catalog's hints may have changed too
            if self._history is not None:
                self._history.apply(query, schema or None)
        if self._tx_standalone or not self.in_transaction or is_ddl(query):
            return self._end(event)
        return None

    def _end(self, event: Any) -> Chunk | None:
        gtid = self._tx_gtid
        if gtid is not None and not self._tx_duplicate:
            self._state.add(*gtid)
        log_pos = int(event.packet.log_pos)
        self.position = position_at(
            str(self._state) if self._state else self.position.gtid, self._file, log_pos
        )
        self.in_transaction = False
        self._tx_gtid = None
        self._tx_id = None
        self._tx_rows = 0
        self._skip, self._skip_tx = 0, None
        if not self.records:
            return None
        return self.cut()

    def cut(self) -> Chunk:
        """Hand out the buffered records with the checkpoint after them."""
        chunk = Chunk(self.records, self.checkpoint())
        self.records = []
        return chunk

    # -- rows ---------------------------------------------------------------------------------

    def _shape(self, event: Any) -> RowShape | None:
        table_id = event.table_id
        shape = self._shapes.get(table_id)
        if shape is not None and shape.source_columns is event.columns:
            return shape
        db, table = str(event.schema), str(event.table)
        if not self._captures(db, table):
            self._shapes[table_id] = None
            return None
        primary_key = event.primary_key
        if self._history is not None:
            hints = self._history.table(db, table)
            if hints is None:
                self._shapes[table_id] = None
                return None
            _name_columns(event.columns, hints)
            primary_key = hints.key
        else:
            hints = self._catalog.table(db, table)
        # Every transaction brings a new TableMap; its shape (and generated decoder) is
        # made once per distinct definition, not per transaction.
        signature = (db, table, _signature(event.columns), str(primary_key))
        shape = self._by_signature.get(signature)
        if shape is not None:
            shape.source_columns = event.columns
            self._shapes[table_id] = shape
            return shape
        shape = shape_of(
            db,
            table,
            topic_name(self._name, db, table),
            event.columns,
            primary_key,
            hints,
            fast=self._fast,
        )
        if len(self._by_signature) > 1000:  # many tables, or many definitions: start over
            self._by_signature.clear()
        self._by_signature[signature] = shape
        self._shapes[table_id] = shape
        return shape

    def _rows(self, event: Any) -> Chunk | None:
        if not self.in_transaction:  # a row event outside BEGIN…COMMIT: its own transaction
            self._begin(None, f"{self._file}:{event.packet.log_pos}")
        if self._tx_duplicate:
            return None
        if event.table_id in self._shapes and self._shapes[event.table_id] is None:
            shape = None
        else:
            shape = self._shape(event)
        if shape is None:
            signal = self._signal
            if signal is not None and (str(event.schema), str(event.table)) == signal:
                self._signal_rows(event)
            return None
        kind = _OPS.get(type(event)) or _op(event)
        images = self._images(event, shape, kind)
        window = self._snapshots.window if self._snapshots is not None else None
        if window is not None and window.open and window.table == f"{shape.db}.{shape.table}":
            # A change inside an incremental snapshot's window is newer than the row read.
            for before, after in images:
                for image in (before, after):
                    if image is not None:
                        window.discard(encode_key(image, shape.key) if shape.key else None)
        first = self._tx_rows
        self._tx_rows += len(images)
        if self._tx_rows <= self._skip:
            return None
        start = max(0, self._skip - first)
        now = self._clock_ms()
        # The envelope's source and transaction blocks, built per row as literals (a copy
        # of a template per row cost twice as much).
        name, db, table, tx_id, file = self._name, shape.db, shape.table, self._tx_id, self._file
        header = event.packet
        server_id, pos = header.server_id, int(header.log_pos)
        ts_ms = int(event.timestamp) * 1000
        key_cols = shape.key
        out = self.records
        append = out.append
        replays = self._tx_replays
        topic = shape.topic
        single = key_cols[0] if len(key_cols) == 1 else None
        for i in range(start, len(images)):
            before, after = images[i]
            key_row = after if after is not None else before
            assert key_row is not None
            src = {"connector": "mysql", "name": name, "db": db, "table": table,
                   "server_id": server_id, "gtid": tx_id, "file": file, "pos": pos, "row": i,
                   "ts_ms": ts_ms, "snapshot": "false"}  # fmt: skip
            tx = {"id": tx_id, "total_order": first + i + 1}
            if replays and _left_out(replays, shape, key_row, key_cols, before):
                continue
            if single is not None:  # the common case, without encode_key's loop
                key: bytes | None = _dumps({single: key_row[single]}, option=_NON_STR_KEYS)
            else:
                key = encode_key(key_row, key_cols) if key_cols else None
            if kind == "u" and key_cols and before is not None:
                old_key = encode_key(before, key_cols)
                if old_key != key:
                    out += event_records(
                        topic=topic, key=old_key, op="d", before=before, after=None,
                        source=src, ts_ms=now, transaction=tx,
                    )  # fmt: skip
                    out += event_records(
                        topic=topic, key=key, op="c", before=None, after=after,
                        source=src, ts_ms=now, transaction=tx,
                    )  # fmt: skip
                    self.changes += 1
                    continue
            if kind == "d":
                out += event_records(
                    topic=topic, key=key, op=kind, before=before, after=None,
                    source=src, ts_ms=now, transaction=tx,
                )  # fmt: skip
            else:  # event_records' envelope, built here: this loop is the hot path
                value = {"before": before, "after": after, "op": kind, "ts_ms": now,
                         "source": src, "transaction": tx}  # fmt: skip
                append(SourceRecord(topic, key, _dumps(value, option=_NON_STR_KEYS), now))
            self.changes += 1
        if len(out) >= self._max_events:
            return self.cut()
        return None

    def _signal_rows(self, event: Any) -> None:
        """Rows written to the signal table: snapshot requests and watermarks."""
        if isinstance(event, DeleteRowsEvent):
            return
        snapshots = self._snapshots
        assert snapshots is not None
        for row in event.rows:
            values = row["after_values"] if "after_values" in row else row["values"]
            self.incremental, records = snapshots.on_signal(
                values, self.incremental, self.position
            )
            self.records += records

    def start_snapshots(self) -> None:
        """Go on with an incremental snapshot the checkpoint has in progress."""
        if self._snapshots is not None and self.incremental is not None:
            self.incremental = self._snapshots.start(self.incremental, self.position)

    def _images(
        self, event: Any, shape: RowShape, kind: str
    ) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
        """(before, after) of every row of the event, as envelope rows."""
        update = kind == "u"
        if shape.decoder is not None and type(event) in _PLAIN:
            decoded = shape.decoder.decode(event, update)
            if decoded is not None:
                if update:
                    return decoded
                if kind == "c":
                    return [(None, row) for row in decoded]
                return [(row, None) for row in decoded]
        convert = shape.convert
        if update:
            return [
                (
                    convert(r["before_values"], r.get("before_none_sources", {})),
                    convert(r["after_values"], r.get("after_none_sources", {})),
                )
                for r in event.rows
            ]
        images = [convert(r["values"], r.get("none_sources", {})) for r in event.rows]
        if kind == "c":
            return [(None, row) for row in images]
        return [(row, None) for row in images]


def _op(event: Any) -> Op:
    return (
        "c"
        if isinstance(event, WriteRowsEvent)
        else ("u" if isinstance(event, UpdateRowsEvent) else "d")
    )


_COLUMN_FACTS = (
    "name", "type", "unsigned", "character_set_name", "max_length", "length_size",
    "precision", "decimals", "fsp", "size", "bytes",
)  # fmt: skip


def _signature(columns: Any) -> tuple[Any, ...]:
    """What a RowShape depends on in a TableMap's columns."""
    return tuple(
        (
            *(getattr(c, f, None) for f in _COLUMN_FACTS),
            tuple(getattr(c, "enum_values", None) or ()),
            tuple(getattr(c, "set_values", None) or ()),
        )
        for c in columns
    )


def _name_columns(columns: Any, schema: TableSchema) -> None:
    """Give a TableMap's columns (types only, without FULL metadata) the names and ENUM/SET
    members of the schema history; mysql-replication decodes its rows with them too."""
    if len(columns) != len(schema.columns):
        raise SchemaError(
            f"the binlog has {len(columns)} columns for {schema.db}.{schema.table} where the "
            f"schema history has {len(schema.columns)} "
            f"({', '.join(c.name for c in schema.columns)}): a DDL statement was not followed. "
            "Set binlog_row_metadata=FULL, or reset the source (changehub reset) to capture "
            "again from a snapshot"
        )
    for col, hint in zip(columns, schema.columns, strict=True):
        col.name = hint.name
        if col.type == 247:  # ENUM: index 0 is the empty (invalid) value
            col.enum_values = ["", *hint.members]
        elif col.type == 248:  # SET
            col.set_values = list(hint.members)


def _left_out(
    replays: tuple[Replay, ...],
    shape: RowShape,
    row: dict[str, Any],
    key_cols: tuple[str, ...],
    before: dict[str, Any] | None,
) -> bool:
    """Whether a snapshot read after this change covers it (see :class:`Replay`)."""
    table = f"{shape.db}.{shape.table}"
    key = tuple(row[c] for c in key_cols) if key_cols else None
    old = tuple(before[c] for c in key_cols) if key_cols and before is not None else key
    # An update moving a row out of the unread part must stay: its old key is in the log.
    return any(r.leaves_out(table, key) and r.leaves_out(table, old) for r in replays)
