"""Postgres values in text form -> JSON-ready values, chosen by type OID.

pgoutput sends every column in its type's text output form, and the snapshot reads rows
with ``COPY … TO STDOUT`` in text form too, so one mapping serves both. The text form
depends on session settings; :data:`SESSION_OPTIONS` pins the ones that matter (UTC, ISO
dates, ISO-8601 intervals, hex bytea, C money) on every connection that reads values.

The mapping, chosen to lose nothing:

=====================================  ===================================================
numeric, money                         string with every digit ("12345.678901234567890")
int2/4/8, oid, xid                     integer
float4/8                               number; NaN, Infinity, -Infinity as those strings
bool                                   true / false
timestamp                              "2024-01-31T12:00:00.123456" (ISO-8601, no zone)
timestamptz                            "2024-01-31T12:00:00.123456Z" (ISO-8601, UTC)
date, time, timetz                     "2024-01-31", "12:00:00", "12:00:00+02:00"
interval                               ISO-8601 duration, "P1Y2M3DT4H5M6.5S"
json, jsonb                            the JSON itself (embedded verbatim: numbers keep
                                       their digits)
uuid, inet, cidr, macaddr, enums,      string
text types, and anything else
bytea                                  base64 string
arrays                                 lists (nested for more dimensions), elements mapped
                                       by the element type
ranges                                 {"lower", "upper", "lower_inc", "upper_inc"} with
                                       bounds mapped by the subtype (null: unbounded), or
                                       {"empty": true}; multiranges: lists of those
domains                                as their base type
=====================================  ===================================================

Dates and timestamps before year 1 (``… BC``) become ISO-8601 astronomical years
("0044-03-15 BC" -> "-0043-03-15"); infinity stays "infinity"/"-infinity".
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "SESSION_OPTIONS",
    "ColumnConverter",
    "Converter",
    "JsonConverter",
    "PgType",
    "TypeMap",
    "column_converter",
    "column_kind",
    "json_converter",
    "parse_array",
    "parse_range",
]

Converter = Callable[[bytes], Any]
# Text value -> its JSON bytes, equal to orjson.dumps(converter(text)); None: the text is the
# JSON already (integers, json, jsonb).
JsonConverter = Callable[[bytes], bytes] | None
_OPTS: Final = orjson.OPT_NON_STR_KEYS

# Session settings under which the text forms below are produced. lc_monetary=C makes money
# print as "-$1,234.56"; extra_float_digits=3 keeps floats exact on every server version.
SESSION_OPTIONS: Final = {
    "client_encoding": "UTF8",
    "TimeZone": "UTC",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "iso_8601",
    "bytea_output": "hex",
    "extra_float_digits": "3",
    "lc_monetary": "C",
}


@dataclass(frozen=True, slots=True)
class PgType:
    """The facts about a type that its mapping depends on (from ``pg_type``/``pg_range``)."""

    oid: int
    name: str
    kind: str  # pg_type.typtype: b base, c composite, d domain, e enum, r range, m multirange
    element: int = 0  # arrays: element type (pg_type.typelem with typcategory 'A')
    base: int = 0  # domains: pg_type.typbasetype
    subtype: int = 0  # ranges and multiranges: pg_range.rngsubtype
    delimiter: str = ","  # array element delimiter (";" for box)


# --- scalar converters ----------------------------------------------------------------------


def _text(b: bytes) -> str:
    return b.decode("utf-8")


def _ascii(b: bytes) -> str:
    """Types whose text form is ASCII without quotes or backslashes (numeric, uuid, inet…)."""
    return b.decode("ascii")


def _bool(b: bytes) -> bool:
    return b == b"t"


def _float(b: bytes) -> float | str:
    value = float(b)
    # NaN and ±Infinity are not JSON numbers: keep Postgres' spelling of them.
    if value - value != 0.0:
        return b.decode()
    return value


def _json(b: bytes) -> orjson.Fragment:
    return orjson.Fragment(b)


def _bytea(b: bytes) -> str:
    if b[:2] == b"\\x":
        return base64.b64encode(bytes.fromhex(b[2:].decode("ascii"))).decode("ascii")
    return base64.b64encode(_bytea_escape(b)).decode("ascii")


def _bytea_escape(b: bytes) -> bytes:
    """bytea's legacy "escape" output: backslash + 3 octal digits, or a doubled backslash."""
    out = bytearray()
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c != 0x5C:
            out.append(c)
            i += 1
        elif b[i + 1 : i + 2] == b"\\":
            out.append(0x5C)
            i += 2
        else:
            out.append(int(b[i + 1 : i + 4], 8))
            i += 4
    return bytes(out)


def _iso_year(text: str) -> str:
    """``"0044-03-15 …" + " BC"`` -> ``"-0043-03-15 …"`` (ISO-8601 has a year 0)."""
    body = text[:-3]
    year, _, rest = body.partition("-")
    return f"{1 - int(year):05d}-{rest}" if int(year) > 1 else f"0000-{rest}"


def _date(b: bytes) -> str:
    text = b.decode("ascii")
    return _iso_year(text) if text.endswith(" BC") else text


def _timestamp(b: bytes) -> str:
    text = b.decode("ascii")
    if text.endswith(" BC"):
        text = _iso_year(text)
    return text.replace(" ", "T", 1) if text[-1].isdigit() else text


def _zone(text: str) -> str:
    """Postgres' "+02" / "+05:30" / "-03:30:15" offset suffix as ISO-8601 ("Z", "+02:00")."""
    for i in range(len(text) - 1, 0, -1):
        if text[i] in "+-":
            offset = text[i:]
            if offset in ("+00", "-00"):
                return text[:i] + "Z"
            return text + ":00" if len(offset) == 3 else text
    return text


def _timestamptz(b: bytes) -> str:
    text = b.decode("ascii")
    bc = text.endswith(" BC")
    if bc:
        text = text[:-3]
    if not text[-1].isdigit():  # infinity, -infinity
        return text
    date, _, time = text.partition(" ")
    if bc:
        date = _iso_year(date + " BC")
    return f"{date}T{_zone(time)}"


def _timetz(b: bytes) -> str:
    return _zone(b.decode("ascii"))


def _money(b: bytes) -> str:
    """``"-$1,234.56"`` or ``"($1,234.56)"`` -> ``"-1234.56"`` (lc_monetary=C)."""
    text = b.decode("utf-8")
    negative = text.startswith("-") or text.startswith("(")
    digits = "".join(ch for ch in text if ch.isdigit() or ch == ".")
    return "-" + digits if negative else digits


_BASE: Final[dict[int, Converter]] = {
    16: _bool,
    17: _bytea,
    20: int,
    21: int,
    23: int,
    26: int,  # oid
    28: int,  # xid
    29: int,  # cid
    5069: int,  # xid8
    700: _float,
    701: _float,
    1700: _ascii,  # numeric: every digit, as a string
    790: _money,
    114: _json,
    3802: _json,
    1082: _date,
    1083: _ascii,  # time
    1266: _timetz,
    1114: _timestamp,
    1184: _timestamptz,
    1186: _ascii,  # interval, already ISO-8601 under IntervalStyle=iso_8601
    # The most common text-like types, known here so they need no catalog query.
    18: _text,  # "char"
    19: _text,  # name
    25: _text,
    1042: _text,  # bpchar
    1043: _text,  # varchar
    2950: _ascii,  # uuid
    869: _ascii,  # inet
    650: _ascii,  # cidr
    829: _ascii,  # macaddr
}


# --- JSON converters: the hot path, straight from text to JSON bytes ------------------------


def _quoted(b: bytes) -> bytes:
    return b'"%b"' % b


def _text_json(b: bytes) -> bytes:
    return orjson.dumps(b.decode("utf-8"))


def _bool_json(b: bytes) -> bytes:
    return b"true" if b == b"t" else b"false"


def _timestamptz_json(b: bytes) -> bytes:
    # The common case under TimeZone=UTC: "2024-01-31 12:00:00.5+00".
    if len(b) > 19 and b[10] == 0x20 and b[-3:] == b"+00":
        return b'"%bT%bZ"' % (b[:10], b[11:-3])
    return orjson.dumps(_timestamptz(b))


def _timestamp_json(b: bytes) -> bytes:
    if len(b) >= 19 and b[10] == 0x20 and 0x30 <= b[-1] <= 0x39:
        return b'"%bT%b"' % (b[:10], b[11:])
    return orjson.dumps(_timestamp(b))


def _date_json(b: bytes) -> bytes:
    return b'"%b"' % b if len(b) == 10 else orjson.dumps(_date(b))


def _float_json(b: bytes) -> bytes:
    return orjson.dumps(_float(b))


_JSON_FOR: Final[dict[Converter, JsonConverter]] = {
    int: None,
    _json: None,
    _ascii: _quoted,
    _text: _text_json,
    _bool: _bool_json,
    _timestamptz: _timestamptz_json,
    _timestamp: _timestamp_json,
    _date: _date_json,
    _float: _float_json,
}


# --- column converters: a whole column of a snapshot chunk at once --------------------------
#
# The snapshot maps tens of thousands of values of one column at a time (``columnar.py``).
# For the common types the whole column goes through C-level loops (``map`` over a bound
# method, or one ``replace`` over the column joined with NUL, which no text value holds);
# each returns exactly ``[convert(v) for v in values]`` of its scalar converter above, and
# falls back to that loop when a value is not of the common form (BC, infinity, …).

ColumnConverter = Callable[[list[bytes]], list[bytes]]
_BOOLS: Final = {b"t": b"true", b"f": b"false"}


def _quoted_column(values: list[bytes]) -> list[bytes]:
    return list(map(b'"%b"'.__mod__, values))


def _text_column(values: list[bytes]) -> list[bytes]:
    return list(map(orjson.dumps, map(bytes.decode, values)))


def _bool_column(values: list[bytes]) -> list[bytes]:
    if len(_BOOLS.keys() | values) == 2:
        return list(map(_BOOLS.__getitem__, values))
    return list(map(_bool_json, values))


def _timestamptz_column(values: list[bytes]) -> list[bytes]:
    # Under TimeZone=UTC every finite AD timestamptz is "date time+00": one space, "+00" at
    # the end; anything else (BC, infinity) fails one of the counts.
    joined = b"\0".join(values)
    n = len(values)
    if joined.count(b" ") == n and joined.count(b"+00\0") == n - 1 and joined.endswith(b"+00"):
        out = joined[:-3].replace(b" ", b"T").replace(b"+00\0", b"\0").split(b"\0")
        return list(map(b'"%bZ"'.__mod__, out))
    return list(map(_timestamptz_json, values))


def _timestamp_column(values: list[bytes]) -> list[bytes]:
    joined = b"\0".join(values)
    if joined.count(b" ") == len(values) and b"BC" not in joined:  # no BC, no infinity
        return list(map(b'"%b"'.__mod__, joined.replace(b" ", b"T").split(b"\0")))
    return list(map(_timestamp_json, values))


def _date_column(values: list[bytes]) -> list[bytes]:
    if b"BC" not in b"\0".join(values):  # "infinity" is quoted as it is
        return list(map(b'"%b"'.__mod__, values))
    return list(map(_date_json, values))


def _same_column(values: list[bytes]) -> list[bytes]:
    return values


_COLUMN_FOR: Final[dict[Callable[[bytes], bytes], ColumnConverter]] = {
    _quoted: _quoted_column,
    _text_json: _text_column,
    _bool_json: _bool_column,
    _timestamptz_json: _timestamptz_column,
    _timestamp_json: _timestamp_column,
    _date_json: _date_column,
}


# Which JSON converters map text by a rule simple enough for Arrow kernels over a whole
# column (arrow_json.py), by the name of that rule; the rules are written down there, each
# beside the converter it must equal.
_KINDS: Final[dict[Callable[[bytes], bytes], str]] = {
    _quoted: "quoted",
    _text_json: "text",
    _bool_json: "bool",
    _timestamptz_json: "timestamptz",
    _timestamp_json: "timestamp",
    _date_json: "date",
}


def column_kind(convert: JsonConverter) -> str:
    """``"same"`` (the text is the JSON), the name of ``convert``'s rule in ``_KINDS``, or
    ``""`` (no rule: value by value)."""
    return "same" if convert is None else _KINDS.get(convert, "")


def column_converter(convert: JsonConverter) -> ColumnConverter:
    """``values -> [convert(v) for v in values]`` (text to JSON), fast for common types."""
    if convert is None:
        return _same_column
    column = _COLUMN_FOR.get(convert)
    if column is not None:
        return column
    return lambda values: list(map(convert, values))


def json_converter(value_converter: Converter) -> JsonConverter:
    """The hot path's converter for values mapped by ``value_converter``."""
    if value_converter in _JSON_FOR:
        return _JSON_FOR[value_converter]

    def convert(b: bytes) -> bytes:
        return orjson.dumps(value_converter(b), option=_OPTS)

    return convert


# Built-in arrays, ranges and multiranges, so that the common cases need no catalog query.
_BUILTIN_ARRAYS: Final = {
    1000: 16, 1001: 17, 1002: 18, 1003: 19, 1005: 21, 1007: 23, 1009: 25, 1014: 1042,
    1015: 1043, 1016: 20, 1021: 700, 1022: 701, 1028: 26, 1231: 1700, 1115: 1114,
    1185: 1184, 1182: 1082, 1183: 1083, 1270: 1266, 1187: 1186, 2951: 2950, 199: 114,
    3807: 3802, 1041: 869, 651: 650, 791: 790, 1040: 829, 775: 774, 1561: 1560, 1563: 1562,
    143: 142, 1017: 600, 1018: 601, 1019: 602, 1027: 604, 629: 628, 719: 718, 1034: 1033,
    3905: 3904, 3907: 3906, 3909: 3908, 3911: 3910, 3913: 3912, 3927: 3926, 1011: 27,
    1010: 28, 1012: 29, 3643: 3614, 3645: 3615, 1008: 24, 2287: 2249,
}  # fmt: skip
_BUILTIN_RANGES: Final = {3904: 23, 3906: 1700, 3908: 1114, 3910: 1184, 3912: 1082, 3926: 20}
_BUILTIN_MULTIRANGES: Final = {
    4451: 23, 4532: 1700, 4533: 1114, 4534: 1184, 4535: 1082, 4536: 20,
}  # fmt: skip
_BOX: Final = 603

CatalogLookup = Callable[[Iterable[int]], Iterable[PgType]]


class TypeMap:
    """Converters by type OID, resolving user types (domains, enums, arrays of them, ranges)
    through ``catalog``, a function that reads ``pg_type`` for some OIDs.

    Thread-safe: the reader thread and the snapshot may ask at the same time.
    """

    def __init__(self, catalog: CatalogLookup | None = None) -> None:
        self._catalog = catalog
        self._types: dict[int, PgType] = {}
        self._converters: dict[int, Converter] = dict(_BASE)
        self._lock = threading.Lock()

    def converter(self, oid: int) -> Converter:
        """How to map text values of type ``oid``. Unknown types come out as strings."""
        found = self._converters.get(oid)
        if found is not None:
            return found
        with self._lock:
            return self._resolve(oid, depth=0)

    def json_converters(self, oids: Iterable[int]) -> list[JsonConverter]:
        """JSON converters (text -> JSON bytes) for a relation's columns."""
        return [json_converter(c) for c in self.converters(oids)]

    def converters(self, oids: Iterable[int]) -> list[Converter]:
        """Converters for a relation's columns; unknown user types are looked up in one query."""
        oids = list(oids)
        self.prefetch(oids)
        return [self.converter(oid) for oid in oids]

    def prefetch(self, oids: Iterable[int]) -> None:
        """Read the catalog rows of all ``oids`` (and the types they refer to) in few queries."""
        if self._catalog is None:
            return
        with self._lock:
            wanted = {o for o in oids if o not in self._converters and self._needs_catalog(o)}
            for _ in range(8):  # domain of array of domain …: a few levels at most
                if not wanted:
                    return
                found = list(self._catalog(sorted(wanted)))
                for t in found:
                    self._types[t.oid] = t
                refs = {r for t in found for r in (t.element, t.base, t.subtype) if r}
                wanted = {r for r in refs if r not in self._converters and self._needs_catalog(r)}

    def _needs_catalog(self, oid: int) -> bool:
        return not (
            oid in self._types
            or oid in _BUILTIN_ARRAYS
            or oid in _BUILTIN_RANGES
            or oid in _BUILTIN_MULTIRANGES
        )

    def _describe(self, oid: int) -> PgType | None:
        if oid in _BUILTIN_ARRAYS:
            element = _BUILTIN_ARRAYS[oid]
            return PgType(oid, "", "b", element=element, delimiter=";" if element == _BOX else ",")
        if oid in _BUILTIN_RANGES:
            return PgType(oid, "", "r", subtype=_BUILTIN_RANGES[oid])
        if oid in _BUILTIN_MULTIRANGES:
            return PgType(oid, "", "m", subtype=_BUILTIN_MULTIRANGES[oid])
        known = self._types.get(oid)
        if known is None and self._catalog is not None:
            for t in self._catalog([oid]):
                self._types[t.oid] = t
            known = self._types.get(oid)
        return known

    def _resolve(self, oid: int, depth: int) -> Converter:
        found = self._converters.get(oid)
        if found is not None:
            return found
        t = self._describe(oid) if depth < 16 else None
        conv: Converter
        if t is None:
            conv = _text
        elif t.element:
            conv = _array_converter(self._resolve(t.element, depth + 1), t.delimiter)
        elif t.kind == "d" and t.base:
            conv = self._resolve(t.base, depth + 1)
        elif t.kind == "r" and t.subtype:
            conv = _range_converter(self._resolve(t.subtype, depth + 1))
        elif t.kind == "m" and t.subtype:
            conv = _multirange_converter(self._resolve(t.subtype, depth + 1))
        else:
            conv = _text  # enums, composites, geometric and other base types: their text
        self._converters[oid] = conv
        return conv


# --- arrays ---------------------------------------------------------------------------------


def _array_converter(element: Converter, delimiter: str) -> Converter:
    def convert(b: bytes) -> list[Any]:
        return parse_array(b.decode("utf-8"), element, delimiter)

    return convert


def parse_array(text: str, element: Converter, delimiter: str = ",") -> list[Any]:
    """Postgres' array text form (``{1,2}``, ``{{"a b",NULL}}``, ``[0:1]={…}``) as lists."""
    pos = 0
    if text.startswith("["):  # explicit bounds: "[1:2][3:4]={...}"
        pos = text.index("=") + 1
    value, end = _array_level(text, pos, element, delimiter)
    if end != len(text):
        raise ValueError(f"unexpected text after the array: {text[end:]!r}")
    return value


def _array_level(text: str, pos: int, element: Converter, delim: str) -> tuple[list[Any], int]:
    if text[pos] != "{":
        raise ValueError(f"expected '{{' at {pos} in array {text!r}")
    pos += 1
    out: list[Any] = []
    if text[pos] == "}":
        return out, pos + 1
    while True:
        c = text[pos]
        if c == "{":
            item, pos = _array_level(text, pos, element, delim)
            out.append(item)
        elif c == '"':
            chars: list[str] = []
            pos += 1
            while text[pos] != '"':
                if text[pos] == "\\":
                    pos += 1
                chars.append(text[pos])
                pos += 1
            pos += 1
            out.append(element("".join(chars).encode("utf-8")))
        else:
            end = pos
            while text[end] != delim and text[end] != "}":
                end += 1
            raw = text[pos:end]
            out.append(None if raw.upper() == "NULL" else element(raw.encode("utf-8")))
            pos = end
        c = text[pos]
        pos += 1
        if c == "}":
            return out, pos
        if c != delim:
            raise ValueError(f"expected {delim!r} or '}}' at {pos - 1} in array {text!r}")


# --- ranges ---------------------------------------------------------------------------------


def _range_converter(subtype: Converter) -> Converter:
    def convert(b: bytes) -> dict[str, Any]:
        value, end = parse_range(b.decode("utf-8"), subtype)
        if end != len(b.decode("utf-8")):
            raise ValueError(f"unexpected text after the range {b!r}")
        return value

    return convert


def _multirange_converter(subtype: Converter) -> Converter:
    def convert(b: bytes) -> list[dict[str, Any]]:
        text = b.decode("utf-8")
        if text[0] != "{":
            raise ValueError(f"expected '{{' in multirange {text!r}")
        out: list[dict[str, Any]] = []
        pos = 1
        while text[pos] != "}":
            item, pos = parse_range(text, subtype, pos)
            out.append(item)
            if text[pos] == ",":
                pos += 1
        return out

    return convert


def parse_range(text: str, subtype: Converter, pos: int = 0) -> tuple[dict[str, Any], int]:
    """A range's text form at ``pos`` (``[1,10)``, ``(,"2024-01-01 00:00:00"]``, ``empty``)."""
    if text.startswith("empty", pos):
        return {"empty": True}, pos + 5
    opener = text[pos]
    if opener not in "[(":
        raise ValueError(f"expected '[' or '(' at {pos} in range {text!r}")
    lower, pos = _range_bound(text, pos + 1, subtype)
    if text[pos] != ",":
        raise ValueError(f"expected ',' at {pos} in range {text!r}")
    upper, pos = _range_bound(text, pos + 1, subtype)
    closer = text[pos]
    if closer not in "])":
        raise ValueError(f"expected ']' or ')' at {pos} in range {text!r}")
    return {
        "lower": lower,
        "upper": upper,
        "lower_inc": opener == "[",
        "upper_inc": closer == "]",
    }, pos + 1


def _range_bound(text: str, pos: int, subtype: Converter) -> tuple[Any, int]:
    """One bound: empty (unbounded), bare, or double-quoted with \\x and "" escapes."""
    chars: list[str] = []
    quoted = False
    while text[pos] not in ",)]" or quoted:
        c = text[pos]
        if c == '"':
            if quoted and text[pos + 1 : pos + 2] == '"':
                chars.append('"')
                pos += 2
                continue
            quoted = not quoted
        elif c == "\\":
            pos += 1
            chars.append(text[pos])
        else:
            chars.append(c)
        pos += 1
    if not chars and text[pos - 1] != '"':
        return None, pos
    return subtype("".join(chars).encode("utf-8")), pos
