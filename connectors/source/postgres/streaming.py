"""Streaming: decoded pgoutput messages -> change events, with the position after them.

:class:`ChangeStream` is fed the messages of the replication stream in order, one call per
message, and appends the events they make to :attr:`ChangeStream.records`; the caller cuts
a batch whenever it likes with :meth:`ChangeStream.cut`, which returns the records and the
:class:`Checkpoint` after them (also in the middle of a transaction, see ``checkpoint.py``).
No I/O here except through the callbacks it is given (catalog lookups for keys and types,
the TOAST filler, the signal handler), so it is tested without a server.

Every event carries the transaction's id, the commit time and its order: ``total_order`` (the
event's place among all events of the transaction, from 1) and ``data_collection_order``
(among the events of the same table). Postgres sends transactions whole, in commit order, so
events leave in commit order and a key's events in the order they happened.

* Insert -> ``c``; Update -> ``u`` with ``before`` only under REPLICA IDENTITY FULL; an update
  that changes the key -> ``d`` for the old key, its tombstone, and ``c`` for the new key (the
  key decides the partition, so a ``u`` across keys would break per-key order);
  Delete -> ``d`` (``before`` holds the key columns, or the whole row under FULL) and a
  tombstone; Truncate -> one ``t`` per table, key null.
* Logical messages whose prefix starts with ``changehub.`` go to ``on_message`` (incremental
  snapshot watermarks and signals); the rest are not events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from connectors.api import SourceRecord
from connectors.source.postgres.checkpoint import Checkpoint
from connectors.source.postgres.encoding import (
    SNAPSHOT_FALSE,
    encode_row,
    envelope,
    source_tail,
    transaction_block,
)
from connectors.source.postgres.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    DecodeError,
    Delete,
    Insert,
    Message,
    Origin,
    PgOutputMessage,
    Relation,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    TypeInfo,
    Update,
    pg_time_to_unix_ms,
)
from connectors.source.postgres.schema import TableSchema
from hub.errors import SchemaError

__all__ = ["ChangeStream", "OpenTransaction", "ToastFiller"]


class ToastFiller(Protocol):
    """Fills unchanged TOASTed values (see ``toast.py``)."""

    tracked: set[str]  # topics whose events must be reported through `note`

    def __call__(
        self, table: TableSchema, key: bytes | None, row: dict[str, Any]
    ) -> dict[str, Any]:
        """``row`` with every UNCHANGED value replaced, or raise SchemaError."""

    def note(self, topic: str, key: bytes | None, after: dict[str, Any] | None) -> None:
        """The latest image of a key of a tracked topic."""


MessageHandler = Callable[[Message, int, "ChangeStream"], None]
SchemaFactory = Callable[[Relation], TableSchema]

SIGNAL_PREFIX: Final = "changehub."
_SKIP_ALL: Final = 1 << 62


class OpenTransaction:
    """The transaction whose Begin came and whose Commit has not yet."""

    __slots__ = ("commit_lsn", "commit_ms", "events", "skip", "tables", "tails", "xid")

    def __init__(self, begin: Begin, skip: int) -> None:
        self.xid = begin.xid
        self.commit_lsn = begin.final_lsn
        self.commit_ms = pg_time_to_unix_ms(begin.commit_ts)
        self.events = 0  # events of this transaction so far, emitted or skipped
        self.skip = skip  # the first `skip` events are in the log already
        self.tables: dict[int, int] = {}  # relation oid -> events of it so far
        self.tails = source_tail(self.commit_lsn, self.xid, self.commit_ms, SNAPSHOT_FALSE)


class ChangeStream:
    """Turns one replication stream's messages into events. Not thread-safe."""

    def __init__(
        self,
        *,
        start: Checkpoint,
        schema_for: SchemaFactory,
        toast: ToastFiller,
        on_message: MessageHandler | None = None,
        clock_ms: Callable[[], int],
    ) -> None:
        self.position = start  # the checkpoint after `records`
        self.records: list[SourceRecord] = []
        self.nbytes = 0
        self.relations: dict[int, TableSchema] = {}
        self.txn: OpenTransaction | None = None
        self._schema_for = schema_for
        self._toast = toast
        self._on_message = on_message
        self._clock_ms = clock_ms
        self.now_ms = clock_ms()
        self._handlers: dict[type, Callable[[Any, int], None]] = {
            Insert: self._insert,
            Update: self._update,
            Delete: self._delete,
            Begin: self._begin,
            Commit: self._commit,
            Relation: self._relation,
            Truncate: self._truncate,
            Message: self._message,
            TypeInfo: self._ignore,
            Origin: self._ignore,
            StreamStart: self._streamed,
            StreamStop: self._streamed,
            StreamCommit: self._streamed,
            StreamAbort: self._streamed,
        }

    # -- feeding ------------------------------------------------------------------------------

    def handle(self, message: PgOutputMessage, lsn: int) -> None:
        """Process one message; ``lsn`` is its XLogData start (the change's own LSN)."""
        self._handlers[message.__class__](message, lsn)

    def tick(self) -> None:
        """Refresh the processing time stamped on events (once per burst of messages)."""
        self.now_ms = self._clock_ms()

    @property
    def in_transaction(self) -> bool:
        return self.txn is not None

    def cut(self) -> tuple[list[SourceRecord], Checkpoint]:
        """Take the records so far and the checkpoint after them."""
        records, self.records, self.nbytes = self.records, [], 0
        txn = self.txn
        if txn is None:
            return records, self.position.with_(txn_commit_lsn=None, txn_events=0)
        return records, self.position.with_(
            txn_commit_lsn=txn.commit_lsn, txn_events=max(txn.events, txn.skip)
        )

    def advance(self, lsn: int) -> None:
        """Move the position to ``lsn`` outside a transaction (keepalive, heartbeat)."""
        if self.txn is None and lsn > self.position.lsn:
            self.position = self.position.with_(lsn=lsn)

    # -- transactions -------------------------------------------------------------------------

    def _begin(self, m: Begin, lsn: int) -> None:
        if self.txn is not None:
            raise DecodeError(f"Begin of xid {m.xid} inside open transaction xid {self.txn.xid}")
        position = self.position
        if position.is_written(m.final_lsn):
            skip = _SKIP_ALL
        elif m.final_lsn == position.txn_commit_lsn:
            skip = position.txn_events
        else:
            skip = 0
        self.txn = OpenTransaction(m, skip)

    def _commit(self, m: Commit, lsn: int) -> None:
        txn = self._open(m)
        if txn.commit_lsn != m.commit_lsn:
            raise DecodeError(
                f"Commit at {m.commit_lsn:X} does not match its Begin ({txn.commit_lsn:X})"
            )
        self.txn = None
        if m.end_lsn > self.position.lsn:
            self.position = self.position.with_(lsn=m.end_lsn, txn_commit_lsn=None, txn_events=0)

    def _open(self, m: object) -> OpenTransaction:
        txn = self.txn
        if txn is None:
            raise DecodeError(f"{type(m).__name__} outside a transaction")
        return txn

    def _count(self, txn: OpenTransaction, oid: int) -> tuple[int, int] | None:
        """Number the next event; None if it is in the log already (skip it)."""
        txn.events += 1
        table_order = txn.tables.get(oid, 0) + 1
        txn.tables[oid] = table_order
        if txn.events <= txn.skip:
            return None
        return txn.events, table_order

    # -- schema -------------------------------------------------------------------------------

    def _relation(self, m: Relation, lsn: int) -> None:
        self.relations[m.oid] = self._schema_for(m)

    def _table(self, oid: int) -> TableSchema:
        table = self.relations.get(oid)
        if table is None:
            raise DecodeError(f"change for relation {oid} before its Relation message")
        return table

    # -- changes ------------------------------------------------------------------------------

    def _emit(
        self,
        table: TableSchema,
        txn: OpenTransaction,
        order: tuple[int, int],
        op: bytes,
        key: bytes | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        lsn: int,
    ) -> None:
        before_json = encode_row(before)
        after_json = encode_row(after)
        self.nbytes += len(before_json) + len(after_json) + 300
        if self._toast.tracked and table.topic in self._toast.tracked:
            self._toast.note(table.topic, key, after)
        envelope(
            topic=table.topic,
            key=key,
            op=op,
            before=before_json,
            after=after_json,
            ts_ms=self.now_ms,
            source_head=table.source_head,
            lsn=lsn,
            source_tail=txn.tails,
            transaction=transaction_block(txn.xid, order[0], order[1]),
            out=self.records,
        )

    def _insert(self, m: Insert, lsn: int) -> None:
        txn = self._open(m)
        table = self._table(m.relation_oid)
        order = self._count(txn, m.relation_oid)
        if order is None:
            return
        row = table.row(m.new)
        self._emit(table, txn, order, b"c", table.key_of(row), None, row, lsn)

    def _update(self, m: Update, lsn: int) -> None:
        txn = self._open(m)
        table = self._table(m.relation_oid)
        new = table.row(m.new)
        old: dict[str, Any] | None = None
        if m.old is not None:
            old = table.row(m.old) if m.old_kind == "O" else table.key_from_tuple(m.old)
        keyed = old is not None and table.key is not None
        old_key = table.key_of(old) if keyed and old is not None else None
        if UNCHANGED in m.new:
            filled = self._fill_unchanged(
                table, txn, new, old if m.old_kind == "O" else None, old_key
            )
            if filled is None:
                return
            new = filled
        new_key = table.key_of(new)
        if keyed and old_key != new_key:
            # The key changed: delete the old row, create the new one (partitions differ).
            order = self._count(txn, m.relation_oid)
            if order is not None:
                self._emit(table, txn, order, b"d", old_key, old, None, lsn)
            order = self._count(txn, m.relation_oid)
            if order is not None:
                self._emit(table, txn, order, b"c", new_key, None, new, lsn)
            return
        order = self._count(txn, m.relation_oid)
        if order is not None:
            self._emit(
                table, txn, order, b"u", new_key, old if m.old_kind == "O" else None, new, lsn
            )

    def _fill_unchanged(
        self,
        table: TableSchema,
        txn: OpenTransaction,
        new: dict[str, Any],
        full_old: dict[str, Any] | None,
        old_key: bytes | None,
    ) -> dict[str, Any] | None:
        """``new`` with unchanged TOASTed values filled in; None if the event is skipped."""
        if full_old is not None:  # REPLICA IDENTITY FULL: the old row has them
            new = {c: full_old[c] if v is UNCHANGED else v for c, v in new.items()}
            if UNCHANGED not in new.values():
                return new
        if txn.events + 1 <= txn.skip:
            # In the log already: count it without asking the filler (which may read the log).
            self._count(txn, table.oid)
            return None
        if table.key is not None and any(new[c] is UNCHANGED for c in table.key):
            raise SchemaError(
                f"an update of {table.qualified} left a TOASTed key column unchanged and "
                "Postgres did not send it, so the row's key is unknown: run ALTER TABLE "
                f"{table.qualified} REPLICA IDENTITY FULL"
            )
        # The previous image is stored under the old key if the key changed.
        return self._toast(table, old_key or table.key_of(new), new)

    def _delete(self, m: Delete, lsn: int) -> None:
        txn = self._open(m)
        table = self._table(m.relation_oid)
        order = self._count(txn, m.relation_oid)
        if order is None:
            return
        if m.old_kind == "O" or table.key is None:
            before = table.row(m.old)
        else:
            before = table.key_from_tuple(m.old)
        self._emit(table, txn, order, b"d", table.key_of(before), before, None, lsn)

    def _truncate(self, m: Truncate, lsn: int) -> None:
        txn = self._open(m)
        for oid in m.relation_oids:
            table = self._table(oid)
            order = self._count(txn, oid)
            if order is not None:
                self._emit(table, txn, order, b"t", None, None, None, lsn)

    def _message(self, m: Message, lsn: int) -> None:
        if not m.prefix.startswith(SIGNAL_PREFIX) or self._on_message is None:
            return
        if m.transactional:
            txn = self._open(m)
            if txn.events < txn.skip or txn.skip == _SKIP_ALL:
                return  # replayed from before the checkpoint: already acted on
        self._on_message(m, lsn, self)

    def _ignore(self, m: object, lsn: int) -> None:
        return

    def _streamed(self, m: object, lsn: int) -> None:
        raise DecodeError(
            f"{type(m).__name__}: Postgres streamed an in-progress transaction, which this "
            "source does not ask for (streaming is off)"
        )

    # -- for watermark handling ---------------------------------------------------------------

    def emit_read(self, table: TableSchema, row: dict[str, Any], lsn: int, tail: bytes) -> None:
        """Append a snapshot read (``r``) of ``row``, stamped with ``lsn``."""
        after_json = encode_row(row)
        self.nbytes += len(after_json) + 300
        key = table.key_of(row)
        if self._toast.tracked and table.topic in self._toast.tracked:
            self._toast.note(table.topic, key, row)
        envelope(
            topic=table.topic,
            key=key,
            op=b"r",
            before=b"null",
            after=after_json,
            ts_ms=self.now_ms,
            source_head=table.source_head,
            lsn=lsn,
            source_tail=tail,
            transaction=b"null",
            out=self.records,
        )
