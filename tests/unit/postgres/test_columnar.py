"""The snapshot's column-at-a-time encoding makes exactly the bytes of the row-by-row mapping."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pytest

from connectors.source.postgres import arrow_json, columnar
from connectors.source.postgres.columnar import ChunkEncoder
from connectors.source.postgres.encoding import READ_HEAD, read_suffix, source_tail
from connectors.source.postgres.schema import TableSchema
from connectors.source.postgres.snapshot import parse_copy_line
from connectors.source.postgres.types import JsonConverter, TypeMap, column_kind
from hub.errors import SchemaError

COLUMNS = {  # name -> type OID
    "id": 20,
    "name": 25,
    "flag": 16,
    "price": 1700,
    "at": 1184,
    "local": 1114,
    "day": 1082,
    "ratio": 701,
    "doc": 3802,
    "raw": 17,
    "tags": 1007,
    "ref": 2950,
}
SUFFIX = read_suffix(1700000000000, b'{"lsn":', 42, source_tail(42, None, 1, b"true"))


def schema(key: Sequence[str] | None = ("id",)) -> TableSchema:
    return TableSchema(
        source_name="shop",
        db="shop",
        oid=1,
        schema="public",
        table="t",
        columns=list(COLUMNS),
        type_oids=list(COLUMNS.values()),
        key=key,
        identity="d",
        types=TypeMap(),
    )


def copy_field(value: str | None) -> bytes:
    """A value as COPY … TO STDOUT (text) writes it."""
    if value is None:
        return b"\\N"
    escaped = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return escaped.replace("\r", "\\r").encode()


def line(*values: str | None) -> bytes:
    return b"\t".join(copy_field(v) for v in values) + b"\n"


COMMON = [
    line("1", "item 1", "t", "0.01", "2024-01-01 00:00:01+00", "2024-01-01 00:00:01",
         "2024-01-01", "1.5", '{"a": 1}', "\\x00ff", "{1,2}",
         "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    line("2", "ünïcode ☃", "f", "-12345.678901234567890", "2024-01-31 12:00:00.5+00",
         "2024-01-31 12:00:00.123456", "1999-12-31", "-0", "[]", "\\x", "{}",
         "00000000-0000-0000-0000-000000000000"),
]  # fmt: skip
ODD = [
    line("3", 'tab\there "quoted" back\\slash\nnew\rline\x01', "t", "NaN",
         "0044-03-15 12:00:00+00 BC", "0044-03-15 12:00:00 BC", "0044-03-15 BC", "NaN",
         '{"k": "v\\n"}', "\\x5c", '{NULL,3}', "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    line("4", None, None, None, "infinity", "-infinity", "infinity", "Infinity", None, None,
         None, None),
    line("5", "", "f", "1e-5", "10000-01-01 00:00:00+00", "10000-01-01 00:00:00",
         "10000-01-01", "1e+300", "null", "\\x61", "{-1}", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
]  # fmt: skip


def row_by_row(table: TableSchema, lines: list[bytes]) -> list[tuple[object, ...]]:
    out = []
    for raw in lines:
        values = parse_copy_line(raw[:-1])
        parts = [
            null if v is None else prefix + (v if conv is None else conv(v))
            for (prefix, conv, null), v in zip(table.json_columns, values, strict=True)
        ]
        value = READ_HEAD + b"{" + b",".join(parts) + b"}" + SUFFIX
        out.append((table.topic, table.key_json(parts), value, 7))
    return out


@pytest.mark.parametrize(
    "lines",
    [COMMON, ODD, COMMON + ODD, [ODD[2], *COMMON], COMMON[:1], (COMMON + ODD) * 100],
    ids=["common", "odd", "mixed", "odd-first", "one-row", "many-passes"],
)
@pytest.mark.parametrize("key", [("id",), ("id", "name"), None], ids=["key", "pair", "keyless"])
def test_a_chunk_encodes_to_the_bytes_of_the_row_by_row_mapping(
    lines: list[bytes], key: tuple[str, ...] | None
) -> None:
    if key == ("id", "name"):
        lines = [raw for raw in lines if not raw.startswith(b"4\t")]  # a NULL key column
    table = schema(key)
    keys, values = ChunkEncoder(table).encode(lines, READ_HEAD, SUFFIX)
    expected = row_by_row(table, lines)
    assert values == [value for _, _, value, _ in expected]
    assert keys == (None if key is None else [k for _, k, _, _ in expected])


def test_an_empty_chunk_has_no_records() -> None:
    assert ChunkEncoder(schema()).encode([], READ_HEAD, SUFFIX) == ([], [])


def test_a_row_with_too_few_values_is_a_schema_error_naming_the_table() -> None:
    with pytest.raises(SchemaError, match=r"public\.t .* expected 12 per row"):
        ChunkEncoder(schema()).encode([COMMON[0], b"6\tshort\n"], READ_HEAD, SUFFIX)


def cut(laid: tuple[bytes, object]) -> list[bytes]:
    """The items of a laid-out column (little-endian i32 lengths, items back to back)."""
    lengths, items = laid
    data = bytes(items)  # type: ignore[call-overload]
    out, pos = [], 0
    for (n,) in struct.iter_unpack("<i", lengths):
        out.append(data[pos : pos + n])
        pos += n
    assert pos == len(data)
    return out


@pytest.mark.parametrize(
    "lines",
    [COMMON, ODD, COMMON + ODD, COMMON[:1], (COMMON + ODD) * 300, []],
    ids=["common", "odd", "mixed", "one-row", "many-passes", "empty"],
)
@pytest.mark.parametrize("key", [("id",), ("id", "name"), None], ids=["key", "pair", "keyless"])
def test_a_laid_out_chunk_holds_the_bytes_of_the_row_by_row_mapping(
    lines: list[bytes], key: tuple[str, ...] | None
) -> None:
    if key == ("id", "name"):
        lines = [raw for raw in lines if not raw.startswith(b"4\t")]  # a NULL key column
    table = schema(key)
    keys, values = ChunkEncoder(table).laid_out(b"".join(lines), len(lines), READ_HEAD, SUFFIX)
    expected = row_by_row(table, lines)
    assert cut(values) == [value for _, _, value, _ in expected]
    if key is None:  # null keys: length -1, no bytes
        assert keys == (b"\xff\xff\xff\xff" * len(lines), b"")
    else:
        assert cut(keys) == [k for _, k, _, _ in expected]


def test_a_laid_out_chunk_of_common_values_is_made_by_arrow_kernels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bytes above come from the Arrow path here: the reader cuts the chunk, and every
    column of a type with a kernel is made by it (the others value by value)."""
    made_by_kernel: list[str] = []
    value_column = arrow_json.value_column

    def spy(convert: JsonConverter, raw: object, *, escaped: bool) -> object:
        column = value_column(convert, raw, escaped=escaped)
        if column is not None:
            made_by_kernel.append(column_kind(convert))
        return column

    def not_here(*_: object) -> None:
        raise AssertionError("the chunk was split in Python")

    monkeypatch.setattr(arrow_json, "value_column", spy)
    monkeypatch.setattr(ChunkEncoder, "_listed_columns", not_here)
    table = schema()
    lines = COMMON * 50
    keys, values = ChunkEncoder(table).laid_out(b"".join(lines), len(lines), READ_HEAD, SUFFIX)
    expected = row_by_row(table, lines)
    assert cut(values) == [value for _, _, value, _ in expected]
    assert cut(keys) == [k for _, k, _, _ in expected]
    # id, name, flag, price, at, local, day, doc, ref: all but ratio (float), raw (bytea)
    # and tags (an array), which have no kernel.
    assert sorted(made_by_kernel) == sorted(
        ["same", "text", "bool", "quoted", "timestamptz", "timestamp", "date", "same", "quoted"]
    )


def test_a_chunk_too_large_for_32_bit_offsets_is_spliced_with_64_bit_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Events of more than 2 GiB in a chunk are spliced as Arrow large_binary: the same
    bytes (the limit lowered here, so that every chunk takes that way)."""
    monkeypatch.setattr(columnar, "_SMALL_SPLICE", 0)
    table = schema()
    lines = (COMMON + ODD) * 3
    keys, values = ChunkEncoder(table).laid_out(b"".join(lines), len(lines), READ_HEAD, SUFFIX)
    expected = row_by_row(table, lines)
    assert cut(values) == [value for _, _, value, _ in expected]
    assert cut(keys) == [k for _, k, _, _ in expected]
