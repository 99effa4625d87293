"""Row events read by :mod:`connectors.source.mysql.reader` without the library's packet
wrapper, against mysql-replication's ``RowsEvent`` on the same packet."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pymysql.protocol import MysqlPacket
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent
from pymysqlreplication.table import Table

from connectors.source.mysql.reader import LightDelete, LightUpdate, LightWrite, _rows_event

TABLE_ID = 0x0102030405
ROWS = b"\x00\x07\x00\x00\x00" * 3  # opaque here: only where they lie is compared


def packet(kind: int, columns: int, *, extra: bytes = b"", checksum: bool = True) -> bytes:
    """OK byte, event header, post-header (table id, flags, v2: extra data), body."""
    width = (columns + 7) // 8
    post = TABLE_ID.to_bytes(6, "little") + (0x0001).to_bytes(2, "little")
    if kind >= 30:  # v2: extra data length (counting itself) and the extra data
        post += (2 + len(extra)).to_bytes(2, "little") + extra
    bitmaps = b"\xff" * width * (2 if kind in (24, 31) else 1)
    body = post + bytes([columns]) + bitmaps + ROWS
    size = 19 + len(body) + (4 if checksum else 0)
    header = (1700000000).to_bytes(4, "little") + bytes([kind]) + (1).to_bytes(4, "little")
    header += size.to_bytes(4, "little") + (4711).to_bytes(4, "little") + b"\x00\x00"
    return b"\x00" + header + body + (b"\xaa\xbb\xcc\xdd" if checksum else b"")


def library(data: bytes, table: Table, checksum: bool) -> Any:
    ctl = SimpleNamespace(charset="utf8mb4", _get_dbms=lambda: "mariadb")
    return BinLogPacketWrapper(
        MysqlPacket(data, "utf8"), {TABLE_ID: table}, ctl, (10, 11, 0), checksum,
        frozenset((WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)), None, None, None, None,
        False, False, False, False, False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "light"),
    [(23, LightWrite), (24, LightUpdate), (25, LightDelete), (30, LightWrite), (31, LightUpdate)],
)
@pytest.mark.parametrize("checksum", [True, False])
def test_a_light_row_event_has_the_librarys_attributes(
    kind: int, light: type[Any], checksum: bool
) -> None:
    table = Table(TABLE_ID, "shop", "items", [], primary_key="id")
    data = packet(kind, 10, checksum=checksum)
    wrapper = library(data, table, checksum)
    theirs = wrapper.event
    ours = _rows_event(data, table, None, checksum)
    assert type(ours) is light and isinstance(ours, type(theirs))
    for attr in ("table_id", "flags", "number_of_columns", "columns_present_bitmap", "schema",
                 "table", "primary_key", "event_size", "timestamp", "event_type"):  # fmt: skip
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    if kind in (24, 31):
        assert ours.columns_present_bitmap2 == theirs.columns_present_bitmap2
    assert (ours.packet.log_pos, ours.packet.server_id) == (4711, 1)
    # Where the rows lie: where the library's reading stands after the header, to the end.
    data_, at, end = ours.rows_span
    assert data_ is data and at == wrapper.packet._position
    assert end == at + theirs.event_size - wrapper.read_bytes
    assert data[at:end] == ROWS


def test_what_the_library_reads_differently_is_left_to_it() -> None:
    table = Table(TABLE_ID, "shop", "items", [], primary_key="id")
    assert _rows_event(packet(23, 251), table, None, True) is None  # a longer column count
    assert _rows_event(packet(30, 3, extra=b"\x01\x07\x00"), table, None, True) is None
    assert _rows_event(packet(23, 3), table, 6, True) is None  # a shorter post-header


def test_a_longer_declared_post_header_is_skipped() -> None:
    table = Table(TABLE_ID, "shop", "items", [], primary_key="id")
    plain = _rows_event(packet(23, 3), table, 8, True)
    data = packet(23, 3)
    # Two bytes more of post-header (a newer server): inserted after the flags.
    longer = data[:28] + b"\x00\x00" + data[28:]
    size = int.from_bytes(longer[10:14], "little") + 2
    longer = longer[:10] + size.to_bytes(4, "little") + longer[14:]
    event = _rows_event(longer, table, 10, True)
    assert event is not None and plain is not None
    assert event.rows_span[0][event.rows_span[1] : event.rows_span[2]] == ROWS
    assert event.number_of_columns == plain.number_of_columns == 3


def test_rows_are_decoded_by_the_library_when_asked_for() -> None:
    table = Table(TABLE_ID, "shop", "items", [], primary_key="id")
    event = _rows_event(packet(23, 3), table, None, True)
    calls = []
    event._wrap = lambda: calls.append(1) or SimpleNamespace(rows=[{"values": {"id": 1}}])
    assert event.rows == [{"values": {"id": 1}}] and calls == [1]
