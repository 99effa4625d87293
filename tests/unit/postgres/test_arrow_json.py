"""The Arrow kernels of the snapshot's common types make exactly the bytes of the per-value
converters of types.py, and cut COPY text as COPY wrote it (or give up)."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from connectors.source.postgres.arrow_json import split, value_column
from connectors.source.postgres.types import TypeMap, column_kind, json_converter

# type OID, values every one of which a kernel must take (the common text of the type)
COMMON = [
    (20, [b"1", b"-9223372036854775808", b"0"]),  # int8: "same"
    (114, [b'{"a": [1, 2.50]}', b"null"]),  # json: "same"
    (1700, [b"0.01", b"-12345.678901234567890", b"NaN"]),  # numeric: "quoted"
    (2950, [b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]),  # uuid: "quoted"
    (25, [b"item 1", "ünïcode ☃ \u2028 \ufeff".encode(), b"", b"it's / <b>", b"\x7f"]),
    (1042, [b"ab "]),  # bpchar: "text"
    (16, [b"t", b"f", b"t"]),
    (1184, [b"2024-01-01 00:00:01+00", b"2024-01-31 12:00:00.123456+00"]),
    (1114, [b"2024-02-29 23:59:59.123456", b"2024-01-01 00:00:00"]),
    (1082, [b"2024-02-29", b"1999-12-31"]),
]
# Values a kernel must leave to the converter, or make the same bytes of.
ODD = [
    (25, [b'say "hi"', b"a\x01b", b"\x1f"]),  # escaped in JSON
    (25, [b"\xff\xfe"]),  # not UTF-8: the converter's error, not a string
    (1184, [b"0044-03-15 12:00:00+00 BC", b"infinity", b"-infinity"]),
    (1184, [b"2024-01-31 12:00:00+05:30", b"2024-01-31 12:00:00+02"]),
    (1184, [b"10000-01-01 00:00:00+00"]),  # no space at 10
    (1114, [b"0044-03-15 12:00:00 BC", b"infinity", b"2024-01-01 00:00:00"]),
    (1082, [b"0044-03-15 BC", b"infinity", b"10000-01-01"]),
    (701, [b"1.5", b"NaN", b"1e+300", b"-0"]),  # floats: no kernel
    (1007, [b"{1,2}", b"{}"]),  # arrays: no kernel
]


def expected(oid: int, values: list[bytes]) -> list[bytes]:
    convert = json_converter(TypeMap().converter(oid))
    return [v if convert is None else convert(v) for v in values]


def made(column: object) -> list[bytes]:
    opening, closing = column.opening, column.closing  # type: ignore[attr-defined]
    return [opening + v + closing for v in column.values.to_pylist()]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("oid", "values"), COMMON, ids=[f"{o}-{i}" for i, (o, _) in enumerate(COMMON)]
)
def test_a_kernel_takes_a_common_column_and_makes_the_converters_bytes(
    oid: int, values: list[bytes]
) -> None:
    convert = json_converter(TypeMap().converter(oid))
    assert column_kind(convert) != ""
    column = value_column(convert, pa.array(values, pa.binary()), escaped=False)
    assert column is not None
    assert made(column) == expected(oid, values)


@pytest.mark.parametrize(("oid", "values"), ODD, ids=[f"{o}-{i}" for i, (o, _) in enumerate(ODD)])
def test_a_kernel_leaves_a_column_with_other_values_to_the_converter(
    oid: int, values: list[bytes]
) -> None:
    convert = json_converter(TypeMap().converter(oid))
    column = value_column(convert, pa.array(values, pa.binary()), escaped=False)
    assert column is None


def test_every_ascii_byte_a_json_string_escapes_is_left_to_the_converter() -> None:
    convert = json_converter(TypeMap().converter(25))
    for byte in range(0x80):
        value = b"a" + bytes([byte]) + b"z"
        escapes = orjson.dumps(value.decode()) != b'"' + value + b'"'
        column = value_column(convert, pa.array([value], pa.binary()), escaped=False)
        if byte in (0x09, 0x0A, 0x5C):  # COPY writes these escaped: never a raw value
            continue
        assert (column is None) == escapes, byte


def test_a_column_with_a_backslash_goes_value_by_value() -> None:
    column = pa.array([b"1", b"\\N"], pa.binary())
    assert value_column(None, column, escaped=True) is None


def test_a_text_column_cut_from_a_longer_array_is_checked_on_its_own_values() -> None:
    """The escape check reads the column's bytes from its offsets: a slice of an array
    is judged by the values in the slice only."""
    convert = json_converter(TypeMap().converter(25))
    whole = pa.array([b'say "hi"', b"plain", b"text", b"a\x01"], pa.binary())
    column = value_column(convert, whole[1:3], escaped=False)
    assert column is not None and made(column) == [b'"plain"', b'"text"']
    assert value_column(convert, whole[0:2], escaped=False) is None
    assert value_column(convert, whole[2:4], escaped=False) is None


def test_split_cuts_copy_text_into_raw_columns() -> None:
    block = b'1\tit\'s "x"\t\\N\n2\t\ta\\tb\\\\\n'
    columns = split(block, 3, 2)
    assert columns is not None
    assert [c.to_pylist() for c in columns] == [
        [b"1", b"2"],
        [b'it\'s "x"', b""],
        [b"\\N", b"a\\tb\\\\"],
    ]
    assert split(b"\n\nx\n", 1, 3) is not None  # empty strings are rows
    assert [c.to_pylist() for c in split(b"\n\nx\n", 1, 3) or []] == [[b"", b"", b"x"]]


@pytest.mark.parametrize(
    ("block", "ncols", "nrows"),
    [
        (b"1\ta\n2\n", 2, 2),  # a short row
        (b"1\ta\tz\n", 2, 1),  # a long row
        (b"1\ta\n", 2, 2),  # fewer rows than said
        ("\ufeffa\tb\n".encode(), 2, 1),  # a BOM the reader would drop
        (b"", 2, 0),
    ],
    ids=["short-row", "long-row", "row-count", "bom", "empty"],
)
def test_split_gives_up_where_it_cannot_be_sure(block: bytes, ncols: int, nrows: int) -> None:
    assert split(block, ncols, nrows) is None
