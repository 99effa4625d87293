"""Fuzzed binlog row events through changehub's row decoder (connectors/source/mysql/decoder.py).

Rows encoded here the way MariaDB writes them (byte layouts from the server's
``my_datetime_packed_to_binary``, ``decimal2bin`` and the row-event format) decode to the
values they were made from. Mutated event bytes raise :class:`hub.errors.DecodeError` or
decode to rows of the right shape — never another exception, never a hang. The event object
is a stand-in carrying the attributes the decoder reads from mysql-replication's event; the
decoder's values are pinned to mysql-replication's against a real server in
``tests/integration/mysql/test_decoder.py``.
"""

from __future__ import annotations

import base64
import struct
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.source.mysql.decoder import RowDecoder, row_decoder
from connectors.source.mysql.types import binlog_converter, kind_of_binlog_column
from hub.errors import DecodeError

# (name, TableMap column) for: INT, BIGINT UNSIGNED, DOUBLE, VARCHAR(100) utf8mb4, BLOB,
# DATE, DATETIME(6), YEAR, DECIMAL(10,2), ENUM('a','b','c').
COLUMNS = [
    ("id", SimpleNamespace(type=3, unsigned=False)),
    ("big", SimpleNamespace(type=8, unsigned=True)),
    ("score", SimpleNamespace(type=5)),
    ("name", SimpleNamespace(type=15, character_set_name="utf8mb4", max_length=400)),
    ("blob", SimpleNamespace(type=252, character_set_name="binary", length_size=2)),
    ("day", SimpleNamespace(type=10)),
    ("at", SimpleNamespace(type=18, fsp=6)),
    ("year", SimpleNamespace(type=13)),
    ("price", SimpleNamespace(type=246, precision=10, decimals=2)),
    ("size", SimpleNamespace(type=247, size=1, enum_values=["", "a", "b", "c"])),
]
NAMES = [n for n, _ in COLUMNS]


def decoder() -> RowDecoder:
    cols = [c for _, c in COLUMNS]
    kinds = [kind_of_binlog_column(c.type, getattr(c, "character_set_name", None)) for c in cols]
    kinds[-1] = "enum"
    made = row_decoder(cols, NAMES, kinds, [binlog_converter(k) for k in kinds])
    assert made is not None, "every column here has a fast reader"
    return made


def _decimal_10_2(value: Decimal) -> bytes:
    """decimal2bin for DECIMAL(10,2): 8 integer digits in 4 bytes, 2 fraction digits in 1."""
    negative = value < 0
    cents = abs(int(value.scaleb(2)))
    raw = bytearray(struct.pack(">I", cents // 100) + bytes([cents % 100]))
    if negative:
        raw = bytearray(b ^ 0xFF for b in raw)
    raw[0] ^= 0x80
    return bytes(raw)


@st.composite
def rows(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """One row image (null bitmap + values) and the row it must decode to."""
    nulls = [draw(st.booleans()) if name != "id" else False for name in NAMES]
    parts: list[bytes] = []
    want: dict[str, Any] = {}
    for (name, _), null in zip(COLUMNS, nulls, strict=True):
        if null:
            want[name] = None
            continue
        if name == "id":
            v: Any = draw(st.integers(-(2**31), 2**31 - 1))
            parts.append(struct.pack("<i", v))
        elif name == "big":
            v = draw(st.integers(0, 2**64 - 1))
            parts.append(struct.pack("<Q", v))
        elif name == "score":
            v = draw(st.floats(allow_nan=False))
            parts.append(struct.pack("<d", v))
        elif name == "name":
            v = draw(st.text(st.characters(exclude_categories=["Cs"]), max_size=100))
            raw = v.encode()
            parts.append(struct.pack("<H", len(raw)) + raw)
        elif name == "blob":
            raw = draw(st.binary(max_size=60))
            parts.append(struct.pack("<H", len(raw)) + raw)
            v = base64.b64encode(raw).decode()
        elif name == "day":
            y, m, d = draw(st.integers(1, 9999)), draw(st.integers(1, 12)), draw(st.integers(1, 28))
            parts.append((y << 9 | m << 5 | d).to_bytes(3, "little"))
            v = f"{y:04d}-{m:02d}-{d:02d}"
        elif name == "at":
            y, mo = draw(st.integers(1, 9999)), draw(st.integers(1, 12))
            d = draw(st.integers(1, 28))
            h, mi, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
            us = draw(st.integers(0, 999_999))
            packed = ((y * 13 + mo) << 22 | d << 17 | h << 12 | mi << 6 | s) + 0x8000000000
            parts.append(packed.to_bytes(5, "big") + us.to_bytes(3, "big"))
            v = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}" + (f".{us:06d}" if us else "")
        elif name == "year":
            n = draw(st.integers(1, 255))
            parts.append(bytes([n]))
            v = 1900 + n
        elif name == "price":
            d = Decimal(draw(st.integers(-(10**10) + 1, 10**10 - 1))).scaleb(-2)
            parts.append(_decimal_10_2(d))
            v = format(d, "f")
        else:
            i = draw(st.integers(1, 3))
            parts.append(bytes([i]))
            v = "abc"[i - 1]
        want[name] = v
    bitmap = sum(1 << i for i, null in enumerate(nulls) if null).to_bytes(2, "little")
    return bitmap + b"".join(parts), want


def event(body: bytes, trailer: bytes = b"\x00\x00\x00\x00") -> Any:
    """The parts of mysql-replication's WriteRowsEvent the decoder reads; ``trailer`` stands
    for the checksum that follows the rows in the packet."""
    full = (1 << len(NAMES)) - 1
    wrapper = SimpleNamespace(
        _BinLogPacketWrapper__data_buffer=b"",
        packet=SimpleNamespace(_position=0, _data=body + trailer),
        read_bytes=0,
        log_pos=4321,
    )
    return SimpleNamespace(
        number_of_columns=len(NAMES),
        columns_present_bitmap=full.to_bytes(2, "little"),
        columns_present_bitmap2=full.to_bytes(2, "little"),
        packet=wrapper,
        event_size=len(body),
        schema="shop",
        table="items",
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(rows(), min_size=1, max_size=4))
def test_rows_round_trip(batch: list[tuple[bytes, dict[str, Any]]]) -> None:
    body = b"".join(raw for raw, _ in batch)
    assert decoder().decode(event(body), update=False) == [want for _, want in batch]


@settings(max_examples=100, deadline=None)
@given(rows(), rows())
def test_update_images_round_trip(before: tuple[bytes, Any], after: tuple[bytes, Any]) -> None:
    got = decoder().decode(event(before[0] + after[0]), update=True)
    assert got == [(before[1], after[1])]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    body = bytearray(b"".join(raw for raw, _ in draw(st.lists(rows(), min_size=1, max_size=3))))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(0, len(body) - 1)))
        op = draw(st.sampled_from(["flip", "set", "cut", "grow", "drop"]))
        if op == "flip" and body:
            body[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and body:
            body[at] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, 0xC0]))
        elif op == "cut":
            del body[at:]
        elif op == "grow":
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif body:
            del body[at : at + draw(st.integers(1, 4))]
    return bytes(body)


@settings(max_examples=500, deadline=None)
@given(mutated(), st.booleans())
def test_mutated_rows_raise_decode_error_or_decode_whole(body: bytes, update: bool) -> None:
    try:
        got = decoder().decode(event(body), update=update)
    except DecodeError as e:
        assert "shop.items" in str(e) and "4321" in str(e)
        return
    assert got is not None
    for row in got:
        for image in row if update else (row,):
            assert list(image) == NAMES


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.binary(max_size=8))
def test_random_bytes_raise_decode_error_or_decode_whole(body: bytes, trailer: bytes) -> None:
    try:
        got = decoder().decode(event(body, trailer), update=False)
    except DecodeError:
        return
    assert got is not None and all(list(row) == NAMES for row in got)
