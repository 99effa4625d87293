"""The batch decoder of Parquet exports (DuckDB's JSON functions) against the per-record path."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.sink.batch import parquet
from connectors.sink.batch.columnar import Decoder
from connectors.sink.batch.rows import ExportRow, export_row
from log.api import LogRecord, RecordBlock, TopicPartition

ENVELOPES: list[object] = [
    {"before": None, "after": {"id": 1, "name": "é \u0001 \"q\" \\", "price": 12.5,
                               "big": 9223372036854775807, "neg": -0.0, "tiny": 1e-7,
                               "nested": {"a": [1, None, True], "b": {}}},
     "op": "c", "ts_ms": 1700000000000,
     "source": {"connector": "postgres", "lsn": 23456789, "snapshot": "false"},
     "transaction": {"id": "812", "total_order": 3}},
    {"before": {"id": 1}, "after": None, "op": "d", "ts_ms": 1700000000001, "source": {}},
    {"op": "t"},  # blocks absent
    {"after": {"id": 2}, "op": None, "ts_ms": None},  # op and ts_ms null
]


def records(values: list[bytes | None], keys: list[bytes | None] | None = None
            ) -> list[LogRecord]:
    keys = keys or [b'{"id": %d}' % n for n in range(len(values))]
    return [LogRecord("t", 0, n, 1700000000000 + n, k, v)
            for n, (k, v) in enumerate(zip(keys, values, strict=True))]


def test_the_batch_decoder_gives_the_per_record_paths_table() -> None:
    batch = records([orjson.dumps(e) for e in ENVELOPES] + [None], [*[b'{"id": 1}'] * 4, None])
    decoder = Decoder()
    try:
        table = decoder.parquet_table(batch, parquet.SCHEMA)
    finally:
        decoder.close()
    assert table is not None
    rows = [export_row(r) for r in batch]
    assert table.to_pylist() == _table_of(rows).to_pylist()
    assert parquet.write(table) == parquet.encode(rows)


def blocks(batch: list[LogRecord], size: int = 2) -> list[RecordBlock]:
    """``batch`` as the log's columnar reads would hand it over, ``size`` records a block."""
    return [RecordBlock.of(TopicPartition("t", 0), batch[i:i + size])
            for i in range(0, len(batch), size)]


def test_blocks_read_as_columns_give_the_same_table_and_file() -> None:
    keys = [None, b'{"id": 1}', b'{"id": 2}', b'{"id": 1}', None, '{"id": "é"}'.encode()]
    batch = records([orjson.dumps(e) for e in ENVELOPES] + [None, b'{"op": "r"}'], keys)
    decoder = Decoder()
    try:
        from_records = decoder.parquet_table(batch, parquet.SCHEMA)
        for size in (1, 2, 4, 6):
            table = decoder.block_table(blocks(batch, size), parquet.SCHEMA)
            assert table is not None and from_records is not None
            assert table.to_pylist() == from_records.to_pylist()
            assert parquet.write(table) == parquet.encode([export_row(r) for r in batch])
    finally:
        decoder.close()


def _table_of(rows: list[ExportRow]) -> pa.Table:
    return pq.read_table(pa.BufferReader(parquet.encode(rows)))


@pytest.mark.parametrize("value", [
    b"not json", b"[1, 2]", b'{"op": 5}', b'{"op": "c", "ts_ms": "soon"}',
    b'{"op": "c", "ts_ms": 18446744073709551615}', b"\xff\xfe",
    b'{"schema": {"type": "struct"}, "payload": {"op": "c"}}',
])
def test_a_batch_with_a_record_the_decoder_cannot_take_is_left_to_the_per_record_path(
    value: bytes
) -> None:
    decoder = Decoder()
    try:
        assert decoder.parquet_table(records([b'{"op": "c"}', value]), parquet.SCHEMA) is None
        assert decoder.parquet_table(records([b'{"op": "c"}'], [b"nope"]), parquet.SCHEMA) is None
        assert decoder.parquet_table(records([b'{"op": "c"}']), parquet.SCHEMA) is not None
        assert decoder.block_table(blocks(records([b'{"op": "c"}', value])),
                                   parquet.SCHEMA) is None
        assert decoder.block_table(blocks(records([b'{"op": "c"}'], [b"nope"])),
                                   parquet.SCHEMA) is None
        assert decoder.block_table(blocks(records([b'{"op": "c"}'])), parquet.SCHEMA) is not None
    finally:
        decoder.close()


def test_the_file_does_not_depend_on_how_the_log_reads_were_cut() -> None:
    # pyarrow's bytes depend on a column's chunks (here: where the after column's dictionary
    # page overflows, ~1.5 MB of distinct texts): blocks of any size must give one file
    batch = records([orjson.dumps({"after": {"id": n, "name": f"row {n} " + "x" * 500}, "op": "c",
                                   "ts_ms": n, "source": {"lsn": n}}) for n in range(3000)])
    decoder = Decoder()
    try:
        files = set()
        for size in (3000, 1000, 999):
            table = decoder.block_table(blocks(batch, size), parquet.SCHEMA)
            assert table is not None
            files.add(parquet.write(table))
    finally:
        decoder.close()
    assert files == {parquet.encode([export_row(r) for r in batch])}
