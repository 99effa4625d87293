"""Streaming: pgoutput messages -> change events, with the position after them.

:class:`ChangeStream` is fed the XLogData messages of the replication stream in order
(:meth:`ChangeStream.feed`) and appends the events they make to
:attr:`ChangeStream.records`; the caller cuts a batch whenever it likes with
:meth:`ChangeStream.cut`, which returns the records and the :class:`Checkpoint` after them
(also in the middle of a transaction, see ``checkpoint.py``). No I/O here except through
the callbacks it is given (catalog lookups for keys and types, the TOAST filler, the signal
handler), so it is tested without a server.

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

The hot path: inserts, updates and deletes go from the message's bytes straight to the
event's JSON (:func:`pgoutput.tuple_json`), with no message object and no row dict. Anything
unusual (an unchanged TOASTed value, a message of another kind) takes the general path:
:class:`pgoutput.PgOutputDecoder` and rows as dicts. Both make the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final, Protocol

from connectors.api import SourceRecord
from connectors.source.postgres.checkpoint import Checkpoint
from connectors.source.postgres.encoding import (
    ENVELOPE,
    SNAPSHOT_FALSE,
    encode_row,
    envelope,
    source_tail,
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
    PgOutputDecoder,
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
    tuple_json,
)
from connectors.source.postgres.replication import XLOGDATA_HEADER
from connectors.source.postgres.resume import ResumedReads
from connectors.source.postgres.schema import TableSchema
from hub.errors import SchemaError

__all__ = ["SIGNAL_PREFIX", "ChangeStream", "OpenTransaction", "ToastFiller"]


class ToastFiller(Protocol):
    """Fills unchanged TOASTed values (see ``toast.py``)."""

    tracked: set[str]  # topics whose events must be reported through `note`

    def __call__(
        self, table: TableSchema, key: bytes | None, row: dict[str, Any]
    ) -> dict[str, Any]:
        """``row`` with every UNCHANGED value replaced, or raise SchemaError."""

    def note(self, topic: str, key: bytes | None, after: bytes | None) -> None:
        """The latest image (JSON) of a key of a tracked topic; None: deleted."""


MessageHandler = Callable[[Message, int, "ChangeStream"], None]
SchemaFactory = Callable[[Relation], TableSchema]

SIGNAL_PREFIX: Final = "changehub."
_SKIP_ALL: Final = 1 << 62
_LSN = struct.Struct(">Q").unpack_from
_OID_KIND = struct.Struct(">IB").unpack_from
_BODY: Final = XLOGDATA_HEADER + 6  # tag, relation OID, tuple kind: then the tuple
_INSERT, _UPDATE, _DELETE = 0x49, 0x55, 0x44
_NEW, _KEY, _OLD = 0x4E, 0x4B, 0x4F
_FAST_FAILS = (struct.error, IndexError, ValueError, TypeError)
_VALUE_FAILS = (*_FAST_FAILS, ArithmeticError)  # OverflowError, decimal errors
# SourceRecord(...) runs a Python-level __new__; building the tuple directly is 3x cheaper.
_record: Final = tuple.__new__
_EVENT: Final = ENVELOPE % (
    b"%b",
    b"%b",
    b"%b",
    b"%d",
    b"%b%d%b",
    b'{"id":"%b","total_order":%d,"data_collection_order":%d}',
)


class OpenTransaction:
    """The transaction whose Begin came and whose Commit has not yet."""

    __slots__ = ("commit_lsn", "commit_ms", "events", "skip", "tables", "tail", "xid", "xid_text")

    def __init__(self, begin: Begin, skip: int) -> None:
        self.xid = begin.xid
        self.xid_text = b"%d" % begin.xid
        self.commit_lsn = begin.final_lsn
        self.commit_ms = pg_time_to_unix_ms(begin.commit_ts)
        self.events = 0  # events of this transaction so far, emitted or skipped
        self.skip = skip  # the first `skip` events are in the log already
        self.tables: dict[int, int] = {}  # relation oid -> events of it so far
        self.tail = source_tail(self.commit_lsn, self.xid, self.commit_ms, SNAPSHOT_FALSE)


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
        protocol_version: int = 1,
    ) -> None:
        self.base = start  # the checkpoint's other parts (snapshot, incremental)
        self.lsn = start.lsn  # end of the last transaction whose events are all emitted
        self.records: list[SourceRecord] = []
        self.nbytes = 0
        self.relations: dict[int, TableSchema] = {}
        self.txn: OpenTransaction | None = None
        self.decoder = PgOutputDecoder(protocol_version)
        # An incremental snapshot's open window: rows read, by key, that streamed events of
        # `window_topic` replace (see incremental_snapshot.py).
        self.window: dict[bytes | None, bytes] | None = None
        self.window_topic: str | None = None
        # Changes a resumed snapshot's reads contain already (see resume.py).
        self.resumed = ResumedReads(start.resumed)
        self._schema_for = schema_for
        self._toast = toast
        self._on_message = on_message
        self._clock_ms = clock_ms
        self.now_ms = clock_ms()
        self.commit_ms: int | None = None  # commit time of the last transaction ended (lag)
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

    def feed(self, message: bytes) -> None:
        """Process one XLogData message (``w``, with its header) of the replication stream."""
        if len(message) <= XLOGDATA_HEADER:
            raise DecodeError(f"XLogData message of {len(message)} bytes has no payload")
        (lsn,) = _LSN(message, 1)
        tag = message[XLOGDATA_HEADER]
        if (
            tag == _INSERT or tag == _UPDATE or tag == _DELETE  # noqa: PLR1714 - fastest
        ) and self._fast(message, tag, lsn):
            return
        try:
            self.handle(self.decoder.decode(message[XLOGDATA_HEADER:]), lsn)
        except _VALUE_FAILS as exc:
            # A value the type's converter cannot read (bad UTF-8, not a number …): Postgres
            # does not send that, so the stream is corrupt; say where, as a typed error.
            raise DecodeError(
                f"pgoutput message at LSN {lsn >> 32:X}/{lsn & 0xFFFFFFFF:X} holds a value "
                f"that does not decode as its column's type: {exc}"
            ) from None

    def handle(self, message: PgOutputMessage, lsn: int) -> None:
        """Process one decoded message; ``lsn`` is its XLogData start (the change's LSN)."""
        self._handlers[message.__class__](message, lsn)

    def tick(self) -> None:
        """Refresh the processing time stamped on events (once per burst of messages)."""
        self.now_ms = self._clock_ms()

    @property
    def in_transaction(self) -> bool:
        return self.txn is not None

    @property
    def position(self) -> Checkpoint:
        """The checkpoint after the records emitted so far."""
        txn = self.txn
        if txn is None:
            return self.base.with_(lsn=self.lsn, txn_commit_lsn=None, txn_events=0)
        return self.base.with_(
            lsn=self.lsn, txn_commit_lsn=txn.commit_lsn, txn_events=max(txn.events, txn.skip)
        )

    def cut(self) -> tuple[list[SourceRecord], Checkpoint]:
        """Take the records so far and the checkpoint after them."""
        records, self.records, self.nbytes = self.records, [], 0
        return records, self.position

    def advance(self, lsn: int) -> bool:
        """Move the position to ``lsn`` outside a transaction (keepalive); True if it moved."""
        if self.txn is None and lsn > self.lsn:
            self.lsn = lsn
            self._passed()
            return True
        return False

    def _passed(self) -> None:
        """Forget the resumed snapshot's ranges the stream has gone past."""
        if self.resumed.ranges and self.resumed.passed(self.lsn):
            self.base = self.base.with_(resumed=self.resumed.ranges)

    # -- the hot path -------------------------------------------------------------------------

    def _fast(self, m: bytes, tag: int, lsn: int) -> bool:
        """Insert/update/delete straight from bytes to JSON; False: take the general path."""
        txn = self.txn
        if txn is None or self.decoder.in_stream:
            return False
        try:
            oid, kind = _OID_KIND(m, XLOGDATA_HEADER + 1)
            table = self.relations.get(oid)
            if table is None:
                return False
            columns = table.json_columns
            old = None
            if kind == _NEW:
                if tag == _DELETE:
                    return False
                new, end = tuple_json(m, _BODY, columns)
            else:
                if kind != _KEY and kind != _OLD:  # noqa: PLR1714
                    return False
                old, end = tuple_json(m, _BODY, columns)
                if old is None:
                    return False
                if tag == _DELETE:
                    new = None
                else:
                    if m[end] != _NEW:
                        return False
                    new, end = tuple_json(m, end + 1, columns)
                    if new is None:
                        return False
            if end != len(m) or (new is None and tag != _DELETE):
                return False
        except _FAST_FAILS:
            return False  # the general path says precisely what is wrong
        if tag == _INSERT:
            assert new is not None
            # _count, inlined: this is the one line most changes take.
            txn.events += 1
            tables = txn.tables
            table_order = tables[oid] = tables.get(oid, 0) + 1
            if txn.events > txn.skip:
                single = table.single_key
                key = b"{%b}" % new[single] if single is not None else table.key_json(new)
                after = b"{%b}" % b",".join(new)
                self._emit(table, txn, txn.events, table_order, b"c", key, b"null", after, lsn)
        elif tag == _UPDATE and old is None:
            assert new is not None
            # The common update (no old row under REPLICA IDENTITY DEFAULT), inlined too.
            txn.events += 1
            tables = txn.tables
            table_order = tables[oid] = tables.get(oid, 0) + 1
            if txn.events > txn.skip:
                single = table.single_key
                key = b"{%b}" % new[single] if single is not None else table.key_json(new)
                after = b"{%b}" % b",".join(new)
                self._emit(table, txn, txn.events, table_order, b"u", key, b"null", after, lsn)
        elif tag == _UPDATE:
            assert new is not None
            after = table.row_json(new)
            key = table.key_json(new)
            if old is not None and table.key_index is not None:
                old_key = table.key_json(old)
                if old_key != key:
                    old_json = table.row_json(old) if kind == _OLD else old_key
                    assert old_json is not None
                    self._key_change(table, txn, old_key, old_json, key, after, lsn)
                    return True
            order = self._count(txn, oid)
            if order is not None:
                before = table.row_json(old) if old is not None and kind == _OLD else b"null"
                self._emit(table, txn, *order, b"u", key, before, after, lsn)
        else:
            assert old is not None
            order = self._count(txn, oid)
            if order is not None:
                key = table.key_json(old)
                before = key if kind == _KEY and key is not None else table.row_json(old)
                self._emit(table, txn, *order, b"d", key, before, b"null", lsn)
        return True

    def _emit(
        self,
        table: TableSchema,
        txn: OpenTransaction,
        total_order: int,
        table_order: int,
        op: bytes,
        key: bytes | None,
        before: bytes,
        after: bytes,
        lsn: int,
    ) -> None:
        if self.resumed.ranges and self.resumed.covers(table, key, txn.xid):
            return
        self.nbytes += len(before) + len(after) + 300
        window = self.window
        if window is not None and table.topic == self.window_topic:
            if op == b"t":
                window.clear()
            else:
                window.pop(key, None)
        tracked = self._toast.tracked
        if tracked and table.topic in tracked:
            self._toast.note(table.topic, key, None if op == b"d" else after)
        now = self.now_ms
        # connectors.envelope's layout, spliced from pieces (see encoding.py).
        value = _EVENT % (
            before,
            after,
            op,
            now,
            table.source_head,
            lsn,
            txn.tail,
            txn.xid_text,
            total_order,
            table_order,
        )
        self.records.append(_record(SourceRecord, (table.topic, key, value, now)))
        if op == b"d":
            self.records.append(_record(SourceRecord, (table.topic, key, None, now)))

    def _key_change(
        self,
        table: TableSchema,
        txn: OpenTransaction,
        old_key: bytes | None,
        before: bytes,
        new_key: bytes | None,
        after: bytes,
        lsn: int,
    ) -> None:
        """The key changed: delete the old row, create the new one (partitions differ)."""
        order = self._count(txn, table.oid)
        if order is not None:
            self._emit(table, txn, *order, b"d", old_key, before, b"null", lsn)
        order = self._count(txn, table.oid)
        if order is not None:
            self._emit(table, txn, *order, b"c", new_key, b"null", after, lsn)

    # -- transactions -------------------------------------------------------------------------

    def _begin(self, m: Begin, lsn: int) -> None:
        if self.txn is not None:
            raise DecodeError(f"Begin of xid {m.xid} inside open transaction xid {self.txn.xid}")
        base = self.base
        if m.final_lsn < self.lsn:
            skip = _SKIP_ALL  # in the log already
        elif m.final_lsn == base.txn_commit_lsn:
            skip = base.txn_events
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
        self.lsn = max(self.lsn, m.end_lsn)
        self.commit_ms = txn.commit_ms

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

    # -- the general path ---------------------------------------------------------------------

    def _insert(self, m: Insert, lsn: int) -> None:
        txn = self._open(m)
        table = self._table(m.relation_oid)
        row = table.row(m.new)
        order = self._count(txn, m.relation_oid)
        if order is not None:
            self._emit(table, txn, *order, b"c", table.key_of(row), b"null", encode_row(row), lsn)

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
            assert old is not None
            self._key_change(table, txn, old_key, encode_row(old), new_key, encode_row(new), lsn)
            return
        order = self._count(txn, m.relation_oid)
        if order is not None:
            before = encode_row(old) if m.old_kind == "O" else b"null"
            self._emit(table, txn, *order, b"u", new_key, before, encode_row(new), lsn)

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
        if m.old_kind == "O" or table.key is None:
            before = table.row(m.old)
        else:
            before = table.key_from_tuple(m.old)
        order = self._count(txn, m.relation_oid)
        if order is not None:
            key = table.key_of(before)
            self._emit(table, txn, *order, b"d", key, encode_row(before), b"null", lsn)

    def _truncate(self, m: Truncate, lsn: int) -> None:
        txn = self._open(m)
        for oid in m.relation_oids:
            table = self._table(oid)
            if self.resumed.ranges:
                self.resumed.truncated(table.qualified)
                self.base = self.base.with_(resumed=self.resumed.ranges)
            order = self._count(txn, oid)
            if order is not None:
                self._emit(table, txn, *order, b"t", None, b"null", b"null", lsn)

    def _message(self, m: Message, lsn: int) -> None:
        if not m.prefix.startswith(SIGNAL_PREFIX) or self._on_message is None:
            return
        if m.transactional:
            txn = self._open(m)
            if txn.events < txn.skip:
                return  # replayed from before the checkpoint: acted on already
        self._on_message(m, lsn, self)

    def _ignore(self, m: object, lsn: int) -> None:
        return

    def _streamed(self, m: object, lsn: int) -> None:
        raise DecodeError(
            f"{type(m).__name__}: Postgres streamed an in-progress transaction, which this "
            "source does not ask for (streaming is off)"
        )

    # -- for watermark handling ---------------------------------------------------------------

    def emit_read(
        self, table: TableSchema, row_json: bytes, key: bytes | None, lsn: int, tail: bytes
    ) -> None:
        """Append a snapshot read (``r``) of a row, stamped with ``lsn``."""
        self.nbytes += len(row_json) + 300
        tracked = self._toast.tracked
        if tracked and table.topic in tracked:
            self._toast.note(table.topic, key, row_json)
        envelope(
            topic=table.topic,
            key=key,
            op=b"r",
            before=b"null",
            after=row_json,
            ts_ms=self.now_ms,
            source_head=table.source_head,
            lsn=lsn,
            source_tail=tail,
            transaction=b"null",
            out=self.records,
        )
