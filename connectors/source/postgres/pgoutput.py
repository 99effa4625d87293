"""Decoder for the messages of Postgres' built-in ``pgoutput`` logical decoding plugin.

Pure bytes in, typed messages out; no I/O. The format is documented in the Postgres manual,
"Logical Replication Message Formats". Protocol version 1 has Begin, Commit, Origin,
Relation, Type, Insert, Update, Delete, Truncate and (with ``messages 'true'``) Message.
Version 2 adds streaming of large in-progress transactions: between Stream Start and Stream
Stop, every Relation/Type/Insert/Update/Delete/Truncate/Message carries the xid of the
(sub)transaction it belongs to, and the transaction ends with Stream Commit or Stream Abort.
Version 4 (Postgres 16) appends the abort LSN and time to Stream Abort.

Column values stay as the bytes Postgres sent: the text form of the value (``types.py``
maps it to JSON by type OID), ``None`` for SQL NULL, :data:`UNCHANGED` for an unchanged
TOASTed value Postgres did not send, or a :class:`BinaryValue` if binary transfer was
requested (changehub never asks for it).

Malformed input (truncated, an unknown message or tuple kind, trailing bytes) raises
:class:`DecodeError`; decoding never loops past the end of the buffer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from hub import errors

__all__ = [
    "UNCHANGED",
    "Begin",
    "BinaryValue",
    "Column",
    "ColumnValue",
    "Commit",
    "DecodeError",
    "Delete",
    "Insert",
    "JsonColumn",
    "Message",
    "Origin",
    "PgOutputDecoder",
    "PgOutputMessage",
    "Relation",
    "StreamAbort",
    "StreamCommit",
    "StreamStart",
    "StreamStop",
    "Truncate",
    "TupleData",
    "TypeInfo",
    "Unchanged",
    "Update",
    "pg_time_to_unix_ms",
    "tuple_json",
]

# Postgres timestamps count microseconds from 2000-01-01 00:00:00 UTC.
PG_EPOCH_UNIX_US: Final = 946_684_800_000_000


def pg_time_to_unix_ms(pg_us: int) -> int:
    """A protocol timestamp (µs since 2000-01-01 UTC) as Unix epoch milliseconds."""
    return (pg_us + PG_EPOCH_UNIX_US) // 1000


class DecodeError(errors.DecodeError):
    """A pgoutput message is malformed: not something Postgres sends. Retrying will not help."""


class Unchanged:
    """The 'u' marker: an unchanged TOASTed value that Postgres left out of the tuple."""

    _instance: Unchanged | None = None

    def __new__(cls) -> Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"

    def __reduce__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged()


class BinaryValue(bytes):
    """A column value in the type's binary send format ('b'), as opposed to text ('t')."""

    __slots__ = ()


ColumnValue = bytes | None | Unchanged
TupleData = list[ColumnValue]


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int  # LSN of the commit record
    commit_ts: int  # µs since 2000-01-01 UTC
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int  # LSN of the commit record (= Begin.final_lsn)
    end_lsn: int  # end of the commit record: confirm this to skip the transaction on restart
    commit_ts: int


@dataclass(frozen=True, slots=True)
class Origin:
    commit_lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class Column:
    is_key: bool  # part of the replica identity
    name: str
    type_oid: int
    type_modifier: int


@dataclass(frozen=True, slots=True)
class Relation:
    xid: int | None
    oid: int
    namespace: str  # "" means pg_catalog
    name: str
    replica_identity: Literal["d", "n", "f", "i"]  # default, nothing, full, index
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """The Type ('Y') message: a non-builtin type used by a following Relation."""

    xid: int | None
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Insert:
    xid: int | None
    relation_oid: int
    new: TupleData


@dataclass(frozen=True, slots=True)
class Update:
    xid: int | None
    relation_oid: int
    old_kind: Literal["K", "O"] | None  # K: old key only, O: whole old row (REPLICA IDENTITY FULL)
    old: TupleData | None
    new: TupleData


@dataclass(frozen=True, slots=True)
class Delete:
    xid: int | None
    relation_oid: int
    old_kind: Literal["K", "O"]
    old: TupleData


@dataclass(frozen=True, slots=True)
class Truncate:
    xid: int | None
    cascade: bool
    restart_identity: bool
    relation_oids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """A logical decoding message written with ``pg_logical_emit_message``."""

    xid: int | None
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


@dataclass(frozen=True, slots=True)
class StreamStart:
    xid: int
    first_segment: bool


@dataclass(frozen=True, slots=True)
class StreamStop:
    pass


@dataclass(frozen=True, slots=True)
class StreamCommit:
    xid: int
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts: int


@dataclass(frozen=True, slots=True)
class StreamAbort:
    xid: int  # the top-level transaction
    subxid: int  # == xid when the whole transaction aborted
    abort_lsn: int | None = None  # protocol 4+
    abort_ts: int | None = None  # protocol 4+


PgOutputMessage = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeInfo
    | Insert
    | Update
    | Delete
    | Truncate
    | Message
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
)

_U16 = struct.Struct(">H").unpack_from
_I32 = struct.Struct(">i").unpack_from
_U32 = struct.Struct(">I").unpack_from
_U64 = struct.Struct(">Q").unpack_from
_BEGIN = struct.Struct(">QqI").unpack_from  # final lsn, commit time, xid
_COMMIT = struct.Struct(">BQQq").unpack_from  # flags, commit lsn, end lsn, commit time
_STREAM_COMMIT = struct.Struct(">IBQQq").unpack_from
_OID_KIND = struct.Struct(">IB").unpack_from
_XID_OID_KIND = struct.Struct(">IIB").unpack_from

_T, _N, _U, _B = ord("t"), ord("n"), ord("u"), ord("b")
_REPLICA_IDENTITIES = frozenset("dnfi")


def _tuple(buf: bytes, pos: int) -> tuple[TupleData, int]:
    """TupleData at ``pos``: Int16 column count, then per column a kind byte and its value."""
    (count,) = _U16(buf, pos)
    pos += 2
    size = len(buf)
    values: TupleData = []
    append = values.append
    for _ in range(count):
        kind = buf[pos]
        pos += 1
        if kind == _T:
            (length,) = _I32(buf, pos)
            pos += 4
            end = pos + length
            if length < 0 or end > size:
                raise DecodeError(f"column value of {length} bytes runs past the message end")
            append(buf[pos:end])
            pos = end
        elif kind == _N:
            append(None)
        elif kind == _U:
            append(UNCHANGED)
        elif kind == _B:
            (length,) = _I32(buf, pos)
            pos += 4
            end = pos + length
            if length < 0 or end > size:
                raise DecodeError(f"column value of {length} bytes runs past the message end")
            append(BinaryValue(buf[pos:end]))
            pos = end
        else:
            raise DecodeError(f"unknown tuple column kind {kind!r} at byte {pos - 1}")
    return values, pos


# One column for tuple_json: its '"name":' prefix, its text -> JSON converter (None: the text
# is the JSON), and the prefix with null.
JsonColumn = tuple[bytes, Callable[[bytes], bytes] | None, bytes]


def tuple_json(
    buf: bytes, pos: int, columns: Sequence[JsonColumn]
) -> tuple[list[bytes] | None, int]:
    """TupleData at ``pos`` straight to the JSON members of a row (``b'"name":value'``).

    The hot path: one pass over the buffer, no intermediate values. Returns None (and the
    caller decodes the message the slow way) when a column is unchanged-TOAST or binary.
    Lengths are not checked against the buffer here: a value running past the end leaves
    the returned position past it, which the caller must check (``pos == len(buf)``).
    """
    (count,) = _U16(buf, pos)
    if count != len(columns):
        raise DecodeError(f"tuple has {count} columns, its relation {len(columns)}")
    pos += 2
    parts: list[bytes] = []
    append = parts.append
    for prefix, convert, null in columns:
        kind = buf[pos]
        if kind == _T:
            (length,) = _U32(buf, pos + 1)
            pos += 5
            end = pos + length
            append(prefix + (buf[pos:end] if convert is None else convert(buf[pos:end])))
            pos = end
        elif kind == _N:
            append(null)
            pos += 1
        elif kind in (_U, _B):
            return None, pos
        else:
            raise DecodeError(f"unknown tuple column kind {kind!r} at byte {pos}")
    return parts, pos


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    """A NUL-terminated UTF-8 string (the connection's client_encoding is UTF8)."""
    end = buf.index(0, pos)
    return buf[pos:end].decode("utf-8"), end + 1


class PgOutputDecoder:
    """Decodes one pgoutput message at a time.

    Stateful only in one bit: whether it is between Stream Start and Stream Stop, where
    messages carry an extra xid field. Not thread-safe; use one per replication stream.
    """

    __slots__ = ("in_stream", "protocol_version")

    def __init__(self, protocol_version: int = 1) -> None:
        self.protocol_version = protocol_version
        self.in_stream = False

    def decode(self, buf: bytes) -> PgOutputMessage:
        """Decode the message in ``buf`` (the payload of one XLogData)."""
        if not buf:
            raise DecodeError("empty pgoutput message")
        tag = buf[0]
        try:
            message, end = self._decode(tag, buf)
        except DecodeError as exc:
            raise DecodeError(f"pgoutput {chr(tag)!r} message: {exc}") from None
        except (struct.error, IndexError, ValueError) as exc:
            # struct.error/IndexError: truncated; ValueError: no NUL ending a string, bad UTF-8.
            raise DecodeError(
                f"pgoutput {chr(tag)!r} message of {len(buf)} bytes is malformed: {exc}"
            ) from None
        if end != len(buf):
            raise DecodeError(
                f"pgoutput {chr(tag)!r} message has {len(buf) - end} unexpected trailing bytes"
            )
        return message

    def _xid(self, buf: bytes) -> tuple[int | None, int]:
        if self.in_stream:
            return _U32(buf, 1)[0], 5
        return None, 1

    def _decode(self, tag: int, buf: bytes) -> tuple[PgOutputMessage, int]:
        # The most frequent messages first.
        if tag == 0x49:  # 'I'
            return self._insert(buf)
        if tag == 0x55:  # 'U'
            return self._update(buf)
        if tag == 0x44:  # 'D'
            return self._delete(buf)
        if tag == 0x42:  # 'B'
            final_lsn, ts, xid = _BEGIN(buf, 1)
            return Begin(final_lsn, ts, xid), 21
        if tag == 0x43:  # 'C'
            flags, commit_lsn, end_lsn, ts = _COMMIT(buf, 1)
            return Commit(flags, commit_lsn, end_lsn, ts), 26
        if tag == 0x52:  # 'R'
            return self._relation(buf)
        if tag == 0x59:  # 'Y'
            xid, pos = self._xid(buf)
            (oid,) = _U32(buf, pos)
            namespace, pos = _string(buf, pos + 4)
            name, pos = _string(buf, pos)
            return TypeInfo(xid, oid, namespace, name), pos
        if tag == 0x54:  # 'T'
            xid, pos = self._xid(buf)
            (count,) = _U32(buf, pos)
            options = buf[pos + 4]
            pos += 5
            if pos + 4 * count > len(buf):
                raise DecodeError(f"{count} truncated relations run past the message end")
            oids = struct.unpack_from(f">{count}I", buf, pos)
            return Truncate(xid, bool(options & 1), bool(options & 2), oids), pos + 4 * count
        if tag == 0x4D:  # 'M'
            xid, pos = self._xid(buf)
            flags = buf[pos]
            (lsn,) = _U64(buf, pos + 1)
            prefix, pos = _string(buf, pos + 9)
            (length,) = _I32(buf, pos)
            pos += 4
            if length < 0 or pos + length > len(buf):
                raise DecodeError(f"content of {length} bytes runs past the message end")
            content = bytes(buf[pos : pos + length])
            return Message(xid, bool(flags & 1), lsn, prefix, content), pos + length
        if tag == 0x4F:  # 'O'
            (commit_lsn,) = _U64(buf, 1)
            name, pos = _string(buf, 9)
            return Origin(commit_lsn, name), pos
        if tag == 0x53:  # 'S'
            (xid,) = _U32(buf, 1)
            first = buf[5]
            self.in_stream = True
            return StreamStart(xid, first == 1), 6
        if tag == 0x45:  # 'E'
            self.in_stream = False
            return StreamStop(), 1
        if tag == 0x63:  # 'c'
            xid, flags, commit_lsn, end_lsn, ts = _STREAM_COMMIT(buf, 1)
            return StreamCommit(xid, flags, commit_lsn, end_lsn, ts), 30
        if tag == 0x41:  # 'A'
            xid, subxid = struct.unpack_from(">II", buf, 1)
            if self.protocol_version >= 4:
                abort_lsn, abort_ts = struct.unpack_from(">Qq", buf, 9)
                return StreamAbort(xid, subxid, abort_lsn, abort_ts), 25
            return StreamAbort(xid, subxid), 9
        raise DecodeError(f"unknown message type byte 0x{tag:02x}")

    def _insert(self, buf: bytes) -> tuple[Insert, int]:
        if self.in_stream:
            xid, oid, kind = _XID_OID_KIND(buf, 1)
            pos = 10
        else:
            xid = None
            oid, kind = _OID_KIND(buf, 1)
            pos = 6
        if kind != 0x4E:  # 'N'
            raise DecodeError(f"expected 'N' before the new tuple, got {kind!r}")
        new, pos = _tuple(buf, pos)
        return Insert(xid, oid, new), pos

    def _update(self, buf: bytes) -> tuple[Update, int]:
        if self.in_stream:
            xid, oid, kind = _XID_OID_KIND(buf, 1)
            pos = 10
        else:
            xid = None
            oid, kind = _OID_KIND(buf, 1)
            pos = 6
        old: TupleData | None = None
        old_kind: Literal["K", "O"] | None = None
        if kind in (0x4B, 0x4F):  # 'K', 'O'
            old_kind = "K" if kind == 0x4B else "O"
            old, pos = _tuple(buf, pos)
            kind = buf[pos]
            pos += 1
        if kind != 0x4E:
            raise DecodeError(f"expected 'N' before the new tuple, got {kind!r}")
        new, pos = _tuple(buf, pos)
        return Update(xid, oid, old_kind, old, new), pos

    def _delete(self, buf: bytes) -> tuple[Delete, int]:
        if self.in_stream:
            xid, oid, kind = _XID_OID_KIND(buf, 1)
            pos = 10
        else:
            xid = None
            oid, kind = _OID_KIND(buf, 1)
            pos = 6
        if kind not in (0x4B, 0x4F):
            raise DecodeError(f"expected 'K' or 'O' before the old tuple, got {kind!r}")
        old, pos = _tuple(buf, pos)
        return Delete(xid, oid, "K" if kind == 0x4B else "O", old), pos

    def _relation(self, buf: bytes) -> tuple[Relation, int]:
        xid, pos = self._xid(buf)
        (oid,) = _U32(buf, pos)
        namespace, pos = _string(buf, pos + 4)
        name, pos = _string(buf, pos)
        identity = chr(buf[pos])
        if identity not in _REPLICA_IDENTITIES:
            raise DecodeError(f"unknown replica identity {identity!r}")
        (count,) = _U16(buf, pos + 1)
        pos += 3
        columns = []
        for _ in range(count):
            flags = buf[pos]
            column_name, pos = _string(buf, pos + 1)
            type_oid, type_modifier = struct.unpack_from(">Ii", buf, pos)
            pos += 8
            columns.append(Column(bool(flags & 1), column_name, type_oid, type_modifier))
        return Relation(xid, oid, namespace, name, identity, tuple(columns)), pos  # type: ignore[arg-type]
