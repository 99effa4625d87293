"""Value mapping of :mod:`connectors.source.mysql.types`, for both decoders' Python values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.source.mysql.types import (
    binlog_converter,
    converter,
    format_time,
    kind_of_binlog_column,
    kind_of_catalog_column,
)


def test_decimal_keeps_every_digit_and_never_uses_an_exponent() -> None:
    conv = converter("decimal")
    assert conv(Decimal("12345678901234567890.0123456789")) == "12345678901234567890.0123456789"
    assert conv(Decimal("1E+2")) == "100"
    assert conv(Decimal("-0.000000001")) == "-0.000000001"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.timedelta(0), "00:00:00"),
        (dt.timedelta(hours=838, minutes=59, seconds=59), "838:59:59"),
        (-dt.timedelta(hours=1, microseconds=250000), "-01:00:00.250000"),
        (dt.timedelta(hours=12, microseconds=1), "12:00:00.000001"),
    ],
)
def test_time_is_a_signed_duration_with_hours_past_24(value: dt.timedelta, text: str) -> None:
    assert format_time(value) == text
    assert converter("time")(value) == text


def test_negative_binlog_time_with_a_fraction_is_corrected() -> None:
    # mysql-replication decodes -01:00:00.25 as -(01:00:00 + 0.75 s).
    decoded = -dt.timedelta(hours=1, microseconds=750000)
    assert binlog_converter("time")(decoded) == "-01:00:00.250000"
    assert binlog_converter("time")(-dt.timedelta(hours=1)) == "-01:00:00"
    assert binlog_converter("time")(dt.timedelta(seconds=1, microseconds=5)) == "00:00:01.000005"


def test_datetimes_and_timestamps_are_iso_8601() -> None:
    value = dt.datetime(2024, 1, 2, 3, 4, 5, 120000)
    assert converter("datetime")(value) == "2024-01-02T03:04:05.120000"
    assert converter("timestamp")(value) == "2024-01-02T03:04:05.120000Z"
    assert converter("date")(dt.date(2024, 2, 29)) == "2024-02-29"
    assert converter("date")("0000-00-00") is None


def test_set_members_come_in_definition_order_from_either_decoder() -> None:
    conv = converter("set", members=("x", "y", "z"))
    assert conv("z,x") == ["x", "z"]
    assert conv({"z", "x"}) == ["x", "z"]
    assert conv("") == []


def test_bit_from_the_binlog_bit_string_and_from_pymysql_bytes() -> None:
    conv = converter("bit")
    assert conv("1010101010") == 0b1010101010
    assert conv(b"\x02\xaa") == 0b1010101010


def test_binary_is_base64_and_binary_n_is_padded_as_mysql_returns_it() -> None:
    assert converter("binary")(b"\x00\xff\x10") == "AP8Q"
    assert converter("binary", fixed_length=4)(b"A") == "QQAAAA=="


def test_json_from_text_and_from_mysql_binary_json() -> None:
    conv = converter("json")
    assert conv('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert conv({b"a": [b"x", 1]}) == {"a": ["x", 1]}


def test_kinds_from_the_binlog_and_from_the_catalog() -> None:
    assert kind_of_binlog_column(252, "binary") == "binary"
    assert kind_of_binlog_column(252, "utf8mb4") == "text"
    assert kind_of_binlog_column(246, None) == "decimal"
    assert kind_of_binlog_column(17, None) == "timestamp"
    assert kind_of_catalog_column("VARBINARY") == "binary"
    assert kind_of_catalog_column("longtext") == "text"
    assert kind_of_catalog_column("json") == "json"
