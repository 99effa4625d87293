"""MySQL / MariaDB values into JSON-ready values, the same whether a row comes from the
binlog (decoded by mysql-replication) or from a snapshot ``SELECT`` (decoded by PyMySQL).

Every column has a *kind*, derived from its binlog column type (streaming) or its catalog
data type (snapshot), and one function per kind maps both decoders' Python values to the
envelope's representation:

=============  ===================================================================
kind           value in the envelope
=============  ===================================================================
int            int (unsigned BIGINT up to 2**64-1 stays exact: JSON numbers are text)
float          float
decimal        str, every digit kept (``"12345678901234567890.0123456789"``)
datetime       ISO-8601 without zone, microseconds when non-zero (``2024-01-02T03:04:05.5``)
timestamp      ISO-8601 in UTC with ``Z`` (the binlog stores TIMESTAMP as UTC seconds)
date           ``YYYY-MM-DD``
time           ``[-]HH:MM:SS[.ffffff]``; hours may exceed 24 (TIME spans ±838 h)
year           int
json           the parsed JSON value (object, array, number …)
enum           str
set            list of str in the column's definition order
bit            int
binary         base64 str (BINARY, VARBINARY, BLOB); BINARY(n) padded to n bytes as
               MySQL returns it, since the binlog strips trailing zero bytes
text           str (utf8mb4 included)
=============  ===================================================================

Zero dates (``0000-00-00``) come back as None from the binlog decoder and are mapped to
None from a snapshot too.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson

__all__ = [
    "Converter",
    "binlog_converter",
    "converter",
    "format_time",
    "kind_of_binlog_column",
    "kind_of_catalog_column",
]

Converter = Callable[[Any], Any]

# Binlog column type codes (pymysql.constants.FIELD_TYPE), as they appear in TableMap events.
_BINLOG_KINDS: dict[int, str] = {
    1: "int",  # TINY
    2: "int",  # SHORT
    3: "int",  # LONG
    8: "int",  # LONGLONG
    9: "int",  # INT24
    4: "float",  # FLOAT
    5: "float",  # DOUBLE
    0: "decimal",  # DECIMAL (old)
    246: "decimal",  # NEWDECIMAL
    7: "timestamp",  # TIMESTAMP
    17: "timestamp",  # TIMESTAMP2
    12: "datetime",  # DATETIME
    18: "datetime",  # DATETIME2
    10: "date",  # DATE
    14: "date",  # NEWDATE
    11: "time",  # TIME
    19: "time",  # TIME2
    13: "year",  # YEAR
    245: "json",  # JSON (MySQL; MariaDB's JSON is LONGTEXT, see the catalog)
    247: "enum",
    248: "set",
    16: "bit",
    255: "binary",  # GEOMETRY: WKB bytes
}
_STRING_TYPES = {15, 253, 254, 249, 250, 251, 252}  # VARCHAR, VAR_STRING, STRING, BLOBs

_CATALOG_KINDS: dict[str, str] = {
    "tinyint": "int",
    "smallint": "int",
    "mediumint": "int",
    "int": "int",
    "integer": "int",
    "bigint": "int",
    "float": "float",
    "double": "float",
    "real": "float",
    "decimal": "decimal",
    "numeric": "decimal",
    "timestamp": "timestamp",
    "datetime": "datetime",
    "date": "date",
    "time": "time",
    "year": "year",
    "json": "json",
    "enum": "enum",
    "set": "set",
    "bit": "bit",
    "binary": "binary",
    "varbinary": "binary",
    "tinyblob": "binary",
    "blob": "binary",
    "mediumblob": "binary",
    "longblob": "binary",
    "geometry": "binary",
    "point": "binary",
    "linestring": "binary",
    "polygon": "binary",
}


def kind_of_binlog_column(type_code: int, charset: str | None) -> str:
    """The kind of a column as a TableMap event describes it."""
    if type_code in _STRING_TYPES:
        return "binary" if charset == "binary" else "text"
    return _BINLOG_KINDS.get(type_code, "text")


def kind_of_catalog_column(data_type: str) -> str:
    """The kind of a column from ``information_schema.COLUMNS.DATA_TYPE``."""
    return _CATALOG_KINDS.get(data_type.lower(), "text")


def format_time(value: dt.timedelta) -> str:
    """A TIME value (a signed duration, up to ±838:59:59.999999) as ``[-]HH:MM:SS[.ffffff]``."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    seconds, fraction = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{text}.{fraction:06d}" if fraction else text


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return None if value is None or str(value).startswith("0000-00-00") else value


def _timestamp(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat() + "Z"
    return None if value is None or str(value).startswith("0000-00-00") else value


def _decimal(value: Any) -> Any:
    # format(Decimal, "f") never switches to exponent notation (1E+2 would lose the scale).
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _time(value: Any) -> Any:
    return format_time(value) if isinstance(value, dt.timedelta) else str(value)


def _binlog_time(value: Any) -> Any:
    """TIME from mysql-replication: it decodes a negative TIME2 with a fraction wrongly
    (-01:00:00.25 comes back as -01:00:00.75: the packed fraction is the complement), so
    the fraction is complemented back here."""
    if not isinstance(value, dt.timedelta):
        return str(value)
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros < 0:
        whole, fraction = divmod(-micros, 1_000_000)
        if fraction:
            return "-" + format_time(dt.timedelta(seconds=whole, microseconds=1_000_000 - fraction))
    return format_time(value)


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    if isinstance(value, dict | list):
        return _decode_keys(value)
    return value


def _decode_keys(value: Any) -> Any:
    """MySQL's binary JSON decoder returns bytes for keys and strings."""
    if isinstance(value, dict):
        return {_text(k): _decode_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_keys(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def _text(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _bit(value: Any) -> Any:
    if isinstance(value, str):  # the binlog decoder: "0101…"
        return int(value, 2) if value else 0
    if isinstance(value, bytes):  # PyMySQL: big-endian bytes
        return int.from_bytes(value, "big")
    return value


def _base64(value: Any) -> Any:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return base64.b64encode(value).decode("ascii")


def _fixed_binary(length: int) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            value = value.encode("utf-8")
        return base64.b64encode(value.ljust(length, b"\0")).decode("ascii")

    return convert


def _set_of(members: Sequence[str] | None) -> Converter:
    order = {m: i for i, m in enumerate(members or ())}

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            items: Any = value.split(",") if value else []
        else:
            items = value
        return sorted(items, key=lambda m: (order.get(m, len(order)), m))

    return convert


def _same(value: Any) -> Any:
    return value


_CONVERTERS: dict[str, Converter] = {
    "int": _same,
    "float": _same,
    "decimal": _decimal,
    "datetime": _iso,
    "date": _iso,
    "timestamp": _timestamp,
    "time": _time,
    "year": _same,
    "json": _json,
    "enum": _text,
    "bit": _bit,
    "binary": _base64,
    "text": _text,
}


def binlog_converter(
    kind: str, *, fixed_length: int | None = None, members: Sequence[str] | None = None
) -> Converter:
    """:func:`converter` for values decoded by mysql-replication (see :func:`_binlog_time`)."""
    if kind == "time":
        return _binlog_time
    return converter(kind, fixed_length=fixed_length, members=members)


def converter(
    kind: str, *, fixed_length: int | None = None, members: Sequence[str] | None = None
) -> Converter:
    """The function that maps a non-null value of ``kind`` to its envelope form.

    ``fixed_length`` is BINARY(n)'s n; ``members`` a SET column's members in definition
    order (both from the catalog).
    """
    if kind == "set":
        return _set_of(members)
    if kind == "binary" and fixed_length is not None:
        return _fixed_binary(fixed_length)
    return _CONVERTERS[kind]
