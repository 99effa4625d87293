"""Byte builders for pgoutput messages, written from the protocol documentation
("Logical Replication Message Formats"), to feed the decoder in unit tests."""

from __future__ import annotations

import struct
from collections.abc import Sequence

Value = bytes | None | str  # str "u": unchanged TOAST marker; bytes: text value


def cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def tuple_data(values: Sequence[Value]) -> bytes:
    out = struct.pack(">H", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v == "u":
            out += b"u"
        else:
            assert isinstance(v, bytes)
            out += b"t" + struct.pack(">i", len(v)) + v
    return out


def xid_part(xid: int | None) -> bytes:
    return b"" if xid is None else struct.pack(">I", xid)


def begin(final_lsn: int, ts: int, xid: int) -> bytes:
    return b"B" + struct.pack(">QqI", final_lsn, ts, xid)


def commit(commit_lsn: int, end_lsn: int, ts: int) -> bytes:
    return b"C" + struct.pack(">BQQq", 0, commit_lsn, end_lsn, ts)


def relation(
    oid: int,
    namespace: str,
    name: str,
    columns: Sequence[tuple[bool, str, int]],
    identity: str = "d",
    xid: int | None = None,
) -> bytes:
    out = b"R" + xid_part(xid) + struct.pack(">I", oid) + cstr(namespace) + cstr(name)
    out += identity.encode() + struct.pack(">H", len(columns))
    for key, col, type_oid in columns:
        out += bytes([1 if key else 0]) + cstr(col) + struct.pack(">Ii", type_oid, -1)
    return out


def insert(oid: int, new: Sequence[Value], xid: int | None = None) -> bytes:
    return b"I" + xid_part(xid) + struct.pack(">I", oid) + b"N" + tuple_data(new)


def update(
    oid: int,
    new: Sequence[Value],
    old: Sequence[Value] | None = None,
    old_kind: str = "K",
    xid: int | None = None,
) -> bytes:
    out = b"U" + xid_part(xid) + struct.pack(">I", oid)
    if old is not None:
        out += old_kind.encode() + tuple_data(old)
    return out + b"N" + tuple_data(new)


def delete(oid: int, old: Sequence[Value], old_kind: str = "K", xid: int | None = None) -> bytes:
    return b"D" + xid_part(xid) + struct.pack(">I", oid) + old_kind.encode() + tuple_data(old)


def truncate(oids: Sequence[int], options: int = 0, xid: int | None = None) -> bytes:
    return (
        b"T"
        + xid_part(xid)
        + struct.pack(">IB", len(oids), options)
        + b"".join(struct.pack(">I", o) for o in oids)
    )


def message(
    prefix: str, content: bytes, lsn: int, transactional: bool = True, xid: int | None = None
) -> bytes:
    return (
        b"M"
        + xid_part(xid)
        + bytes([1 if transactional else 0])
        + struct.pack(">Q", lsn)
        + cstr(prefix)
        + struct.pack(">i", len(content))
        + content
    )


def type_message(oid: int, namespace: str, name: str, xid: int | None = None) -> bytes:
    return b"Y" + xid_part(xid) + struct.pack(">I", oid) + cstr(namespace) + cstr(name)


def origin(commit_lsn: int, name: str) -> bytes:
    return b"O" + struct.pack(">Q", commit_lsn) + cstr(name)


def stream_start(xid: int, first: bool) -> bytes:
    return b"S" + struct.pack(">IB", xid, 1 if first else 0)


def stream_stop() -> bytes:
    return b"E"


def stream_commit(xid: int, commit_lsn: int, end_lsn: int, ts: int) -> bytes:
    return b"c" + struct.pack(">IBQQq", xid, 0, commit_lsn, end_lsn, ts)


def stream_abort(xid: int, subxid: int) -> bytes:
    return b"A" + struct.pack(">II", xid, subxid)
