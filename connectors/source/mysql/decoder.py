"""A faster decoder of row events for the common column types.

mysql-replication decodes every value through a chain of method calls and then builds a
dict per row; that, not the server, limits a binlog reader written in Python (see the
benchmark in ``bench/``). This decoder reads the rows of a Write/Update/Delete event
straight from the event's bytes with one small function per column, and produces the
envelope's values directly (the forms of :mod:`types`), so values are decoded and mapped in
one step. It relies on mysql-replication for everything else — the packet, the TableMap and
its column metadata — and covers integers, FLOAT/DOUBLE, DECIMAL, CHAR/VARCHAR/TEXT in
UTF-8 and Latin-1, BINARY/VARBINARY/BLOB, DATE, DATETIME2, TIMESTAMP2, TIME2, YEAR, ENUM,
SET and BIT. A table with any other column (MySQL's binary JSON, GEOMETRY, old temporal
formats, other character sets), or an event without a full row image, is decoded by
mysql-replication as before (:func:`row_decoder` returns None).

Unlike mysql-replication it decodes negative TIME values with a fraction correctly (the
fraction of a negative TIME2 is stored complemented) and keeps an empty SET apart from NULL.
The values are pinned to mysql-replication's (and PyMySQL's, for snapshots) by
``tests/integration/mysql/test_decoder.py``. Malformed rows (a value that does not read as
its type, rows overrunning the event) raise :class:`hub.errors.DecodeError`; fuzzed by
``tests/fuzz/test_binlog_fuzz.py``.
"""

from __future__ import annotations

import codecs
import datetime as dt
import struct
from collections.abc import Callable, Sequence
from typing import Any

from pymysqlreplication.row_event import RowsEvent

from connectors.source.mysql.types import Converter
from hub.errors import DecodeError

__all__ = ["RowDecoder", "row_decoder"]

# A reader takes (data, offset) and returns (value, new offset).
Reader = Callable[[bytes, int], tuple[Any, int]]

_EPOCH = dt.datetime(1970, 1, 1)
# What reading past the data or an impossible value raises (UnicodeDecodeError is a
# ValueError; OverflowError and decimal.InvalidOperation are ArithmeticErrors).
_MALFORMED = (struct.error, IndexError, ValueError, ArithmeticError, TypeError)
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)

_s8, _u8 = struct.Struct("<b"), struct.Struct("<B")
_s16, _u16 = struct.Struct("<h"), struct.Struct("<H")
_s32, _u32 = struct.Struct("<i"), struct.Struct("<I")
_s64, _u64 = struct.Struct("<q"), struct.Struct("<Q")
_f32, _f64 = struct.Struct("<f"), struct.Struct("<d")


def _fixed(fmt: struct.Struct) -> Reader:
    unpack, size = fmt.unpack_from, fmt.size

    def read(data: bytes, at: int) -> tuple[Any, int]:
        return unpack(data, at)[0], at + size

    return read


def _int24(unsigned: bool) -> Reader:
    def read(data: bytes, at: int) -> tuple[Any, int]:
        return int.from_bytes(data[at : at + 3], "little", signed=not unsigned), at + 3

    return read


def _string(length_size: int, convert: Converter, codec: str | None) -> Reader:
    def read(data: bytes, at: int) -> tuple[Any, int]:
        n = int.from_bytes(data[at : at + length_size], "little")
        at += length_size
        raw = data[at : at + n]
        return convert(raw if codec is None else raw.decode(codec)), at + n

    return read


def _fsp_reader(fsp: int) -> Callable[[bytes, int], tuple[int, int]]:
    size = (fsp + 1) // 2

    def read(data: bytes, at: int) -> tuple[int, int]:
        if size == 0:
            return 0, at
        value = int.from_bytes(data[at : at + size], "big")
        if fsp % 2:
            value //= 10
        return value * 10 ** (6 - fsp), at + size

    return read


def _frac(micros: int) -> str:
    return f".{micros:06d}" if micros else ""


def _datetime2(fsp: int) -> Reader:
    size = (fsp + 1) // 2  # fraction bytes, read with the 5 bytes before them as one int
    shift, width = 8 * size, 5 + size
    fmask = (1 << shift) - 1
    div = 10 if fsp % 2 else 1
    scale = 10 ** (6 - fsp)

    def read(data: bytes, at: int) -> tuple[Any, int]:
        whole = int.from_bytes(data[at : at + width], "big")
        v = whole >> shift
        micros = (whole & fmask) // div * scale
        ym = (v >> 22) & 0x1FFFF
        year, month = divmod(ym, 13)
        day = (v >> 17) & 0x1F
        if not (year and month and day):
            return None, at + width  # a zero date, as mysql-replication gives it
        text = (
            f"{year:04d}-{month:02d}-{day:02d}T{(v >> 12) & 0x1F:02d}:{(v >> 6) & 0x3F:02d}:"
            f"{v & 0x3F:02d}"
        )
        return (f"{text}.{micros:06d}" if micros else text), at + width

    return read


def _timestamp2(fsp: int) -> Reader:
    frac = _fsp_reader(fsp)

    def read(data: bytes, at: int) -> tuple[Any, int]:
        seconds = int.from_bytes(data[at : at + 4], "big")
        micros, end = frac(data, at + 4)
        t = _EPOCH + dt.timedelta(seconds=seconds)
        return f"{t.isoformat()}{_frac(micros)}Z", end

    return read


def _date(data: bytes, at: int) -> tuple[Any, int]:
    v = int.from_bytes(data[at : at + 3], "little")
    year, month, day = v >> 9, (v >> 5) & 0xF, v & 0x1F
    if not (year and month and day):
        return None, at + 3
    return f"{year:04d}-{month:02d}-{day:02d}", at + 3


def _time2(fsp: int) -> Reader:
    """MySQL's my_time_packed_from_binary: the int part offset by 0x800000; a negative value
    with a fraction stores int part - 1 and the fraction's complement."""
    size = (fsp + 1) // 2

    def read(data: bytes, at: int) -> tuple[Any, int]:
        if size == 3:
            packed = int.from_bytes(data[at : at + 6], "big") - 0x800000000000
            end = at + 6
        else:
            intpart = int.from_bytes(data[at : at + 3], "big") - 0x800000
            frac = 0
            if size:
                frac = int.from_bytes(data[at + 3 : at + 3 + size], "big")
                if intpart < 0 and frac:
                    intpart += 1
                    frac -= 1 << (8 * size)
                frac *= 10_000 if size == 1 else 100
            packed = (intpart << 24) + frac
            end = at + 3 + size
        sign = "-" if packed < 0 else ""
        packed = abs(packed)
        hms, micros = packed >> 24, packed % (1 << 24)
        return (
            f"{sign}{(hms >> 12) & 0x3FF:02d}:{(hms >> 6) & 0x3F:02d}:{hms & 0x3F:02d}"
            f"{_frac(micros)}",
            end,
        )

    return read


def _year(data: bytes, at: int) -> tuple[Any, int]:
    v = data[at]
    return (v + 1900 if v else 0), at + 1


def _decimal(precision: int, scale: int) -> Reader:
    integral = precision - scale
    full_int, rest_int = divmod(integral, 9)
    full_frac, rest_frac = divmod(scale, 9)
    size = _DIG2BYTES[rest_int] + full_int * 4 + full_frac * 4 + _DIG2BYTES[rest_frac]
    if integral <= 9 and scale <= 9:
        return _small_decimal(size, _DIG2BYTES[rest_frac] if scale < 9 else 4, scale)

    def read(data: bytes, at: int) -> tuple[Any, int]:
        raw = bytearray(data[at : at + size])
        negative = not raw[0] & 0x80
        raw[0] ^= 0x80
        if negative:
            raw = bytearray(b ^ 0xFF for b in raw)
        pos = 0
        parts = []
        n = _DIG2BYTES[rest_int]
        if n:
            parts.append(str(int.from_bytes(raw[pos : pos + n], "big")))
            pos += n
        for _ in range(full_int):
            parts.append(f"{int.from_bytes(raw[pos : pos + 4], 'big'):09d}")
            pos += 4
        parts.append(".")
        for _ in range(full_frac):
            parts.append(f"{int.from_bytes(raw[pos : pos + 4], 'big'):09d}")
            pos += 4
        n = _DIG2BYTES[rest_frac]
        if n:
            parts.append(f"{int.from_bytes(raw[pos : pos + n], 'big'):0{rest_frac}d}")
        digits = "".join(parts)
        # The canonical form without Decimal: no leading zeros before the point ("0.5").
        whole, _, frac = digits.partition(".")
        whole = whole.lstrip("0") or "0"
        text = f"{whole}.{frac}" if scale else whole
        return ("-" + text if negative else text), at + size

    return read


def _small_decimal(size: int, frac_bytes: int, scale: int) -> Reader:
    """DECIMAL(p, s) with at most 9 digits on each side of the point (one group each): the
    whole value read as one integer."""
    top = 1 << (8 * size - 1)
    mask = (1 << (8 * size)) - 1
    shift = 8 * frac_bytes
    fmask = (1 << shift) - 1

    def read(data: bytes, at: int) -> tuple[Any, int]:
        raw = int.from_bytes(data[at : at + size], "big")
        negative = not raw & top
        raw ^= top
        if negative:
            raw ^= mask  # negative values are stored complemented
        whole = raw >> shift
        text = f"{whole}.{raw & fmask:0{scale}d}" if scale else str(whole)
        return ("-" + text if negative else text), at + size

    return read


def _enum(size: int, members: Sequence[str]) -> Reader:
    def read(data: bytes, at: int) -> tuple[Any, int]:
        index = int.from_bytes(data[at : at + size], "little")
        return (members[index - 1] if 0 < index <= len(members) else ""), at + size

    return read


def _set(size: int, members: Sequence[str]) -> Reader:
    def read(data: bytes, at: int) -> tuple[Any, int]:
        mask = int.from_bytes(data[at : at + size], "little")
        return [m for i, m in enumerate(members) if mask >> i & 1], at + size

    return read


def _bit(nbytes: int) -> Reader:
    def read(data: bytes, at: int) -> tuple[Any, int]:
        return int.from_bytes(data[at : at + nbytes], "big"), at + nbytes

    return read


def _codec(charset: str | None) -> str | None:
    """The Python codec of a column's character set as mysql-replication picks it; "" for
    bytes (binary), None when mysql-replication would not decode it either."""
    if charset is None or charset == "binary":
        return ""
    encoding = RowsEvent.charset_to_encoding(charset)
    try:
        codecs.lookup(encoding)
    except LookupError:
        return None
    return str(encoding)


def _reader(col: Any, kind: str, convert: Converter) -> Reader | None:
    t = col.type
    unsigned = bool(getattr(col, "unsigned", False))
    if t == 1:
        return _fixed(_u8 if unsigned else _s8)
    if t == 2:
        return _fixed(_u16 if unsigned else _s16)
    if t == 9:
        return _int24(unsigned)
    if t == 3:
        return _fixed(_u32 if unsigned else _s32)
    if t == 8:
        return _fixed(_u64 if unsigned else _s64)
    if t == 4:
        return _fixed(_f32)
    if t == 5:
        return _fixed(_f64)
    if t == 246:
        return _decimal(col.precision, col.decimals)
    if t in (15, 254, 252):
        if kind not in ("text", "binary", "json"):
            return None
        codec = _codec(col.character_set_name)
        if codec is None:
            return None
        size = col.length_size if t == 252 else (2 if col.max_length > 255 else 1)
        return _string(size, convert, codec or None)
    if t == 18:
        return _datetime2(col.fsp)
    if t == 17:
        return _timestamp2(col.fsp)
    if t == 10:
        return _date
    if t == 19:
        return _time2(col.fsp)
    if t == 13:
        return _year
    if t == 247:
        return _enum(col.size, col.enum_values[1:] if col.enum_values else ())
    if t == 248:
        return _set(col.size, col.set_values or ())
    if t == 16:
        return _bit(col.bytes)
    return None


# Column types read inline by the generated row function: struct formats.
_INLINE_FIXED = {1: ("b", "B"), 2: ("h", "H"), 3: ("i", "I"), 8: ("q", "Q")}
_INLINE_FLOAT = {4: "f", 5: "d"}


def _inline(col: Any, kind: str) -> str | None:
    """The statement that reads column ``{i}`` into ``v{i}`` without a call, or None."""
    t = col.type
    if t in _INLINE_FIXED or t in _INLINE_FLOAT:
        fmt = _INLINE_FLOAT.get(t) or _INLINE_FIXED[t][bool(getattr(col, "unsigned", False))]
        size = struct.calcsize(fmt)
        return f"v{{i}} = unpack_{fmt}(data, at)[0]; at += {size}"
    if t in (15, 254) and kind == "text":
        codec = _codec(col.character_set_name)
        if not codec:
            return None
        if col.max_length > 255:
            head = "n = data[at] | data[at + 1] << 8; at += 2"
        else:
            head = "n = data[at]; at += 1"
        return f"{head}; v{{i}} = data[at:at + n].decode({codec!r}); at += n"
    return None


def _compile(names: Sequence[str], readers: Sequence[Reader], inline: Sequence[str | None]
             ) -> Callable[[bytes, int], tuple[dict[str, Any], int]]:
    """One function that reads a row image: the null bitmap, then every column in turn,
    common types inline (a call per value and a dict growing per column cost as much as
    the decoding itself)."""
    count = len(names)
    nbytes = (count + 7) // 8
    lines = [
        "def image(data, at):",
        f"    nulls = int.from_bytes(data[at:at + {nbytes}], 'little'); at += {nbytes}",
    ]
    env: dict[str, Any] = {f"unpack_{c}": struct.Struct("<" + c).unpack_from for c in "bBhHiIqQfd"}
    for i, (name, read, code) in enumerate(zip(names, readers, inline, strict=True)):
        env[f"n{i}"], env[f"r{i}"] = name, read
        lines.append(f"    if nulls >> {i} & 1:\n        v{i} = None\n    else:")
        lines.append("        " + (code.format(i=i) if code else f"v{i}, at = r{i}(data, at)"))
    row = ", ".join(f"n{i}: v{i}" for i in range(count))
    lines.append(f"    return {{{row}}}, at")
    exec(compile("\n".join(lines), "<row decoder>", "exec"), env)  # our own generated code
    return env["image"]  # type: ignore[no-any-return]


class RowDecoder:
    """Decodes the rows of one TableMap's row events into envelope rows."""

    def __init__(
        self,
        names: tuple[str, ...],
        readers: list[Reader],
        inline: Sequence[str | None] | None = None,
    ) -> None:
        self._names = names
        self._readers = readers
        self._count = len(names)
        self._bitmap = (self._count + 7) // 8
        # The columns-present bitmap of a full row image: every column's bit set.
        self._full = ((1 << self._count) - 1).to_bytes(self._bitmap, "little")
        self._image = _compile(names, readers, inline or [None] * len(names))

    def decode(self, event: Any, update: bool) -> list[Any] | None:
        """[row] (write/delete) or [(before, after)] (update); None if the event's images
        are not full (mysql-replication then decodes it)."""
        full = self._full
        if event.number_of_columns != self._count or event.columns_present_bitmap != full:
            return None
        if update and event.columns_present_bitmap2 != full:
            return None
        span = getattr(event, "rows_span", None)  # a light event (reader.py) says where
        if span is not None:
            data, at, end = span
        else:
            wrapper = event.packet
            if wrapper._BinLogPacketWrapper__data_buffer:
                return None
            raw = wrapper.packet
            at = raw._position
            end = at + event.event_size - wrapper.read_bytes
            data = raw._data
        out: list[Any] = []
        image = self._image
        try:
            while at < end:
                row, at = image(data, at)
                if update:
                    after, at = image(data, at)
                    out.append((row, after))
                else:
                    out.append(row)
        except _MALFORMED as exc:
            raise self._malformed(event, f"a value does not decode: {exc}") from None
        if at != end:
            # A length or a type read wrongly makes the rows overrun (or stop short of) the
            # event; the values read on the way cannot be trusted.
            raise self._malformed(event, f"rows end at byte {at}, the event at {end}")
        return out

    @staticmethod
    def _malformed(event: Any, what: str) -> DecodeError:
        table = f"{getattr(event, 'schema', '?')}.{getattr(event, 'table', '?')}"
        at = getattr(getattr(event, "packet", None), "log_pos", None)
        return DecodeError(
            f"binlog row event of {table} (ending at log position {at}) is malformed: {what}"
        )


def row_decoder(
    columns: Sequence[Any], names: Sequence[str], kinds: Sequence[str], converters: Sequence[Any]
) -> RowDecoder | None:
    """A decoder for rows under this TableMap, or None if a column needs mysql-replication."""
    readers, inline = [], []
    for col, kind, conv in zip(columns, kinds, converters, strict=True):
        reader = _reader(col, kind, conv)
        if reader is None:
            return None
        readers.append(reader)
        inline.append(_inline(col, kind))
    return RowDecoder(tuple(names), readers, inline)
