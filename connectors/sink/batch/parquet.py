"""Parquet export: one row per record, the envelope flattened into fixed columns.

=============  =======================  ==============================================
column         type                     content
=============  =======================  ==============================================
offset         int64                    the record's offset in its partition
timestamp      timestamp(ms, UTC)       the record's timestamp
key            string                   the key's JSON text ({"id": 7})
op             string                   c, u, d, r, t; null for a tombstone
ts_ms          int64                    the envelope's ts_ms
before         string                   JSON text of the before image, or null
after          string                   JSON text of the after image, or null
source         string                   JSON text of the source block (position …)
transaction    string                   JSON text of the transaction block, or null
=============  =======================  ==============================================

The row images are JSON text rather than typed columns: their columns differ between
tables and change over time, and one file may span such a change, while these columns are
the same for every topic, so files of different days and tables can be read together.
Warehouses parse them with their JSON functions (DuckDB: ``after->>'$.name'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.sink.batch.rows import ExportRow

__all__ = ["EXTENSION", "SCHEMA", "encode", "write"]

EXTENSION = "parquet"

SCHEMA = pa.schema(
    [
        ("offset", pa.int64()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("key", pa.string()),
        ("op", pa.string()),
        ("ts_ms", pa.int64()),
        ("before", pa.string()),
        ("after", pa.string()),
        ("source", pa.string()),
        ("transaction", pa.string()),
    ]
)


def encode(rows: Sequence[ExportRow]) -> bytes:
    columns: dict[str, list[Any]] = {
        "offset": [row.record.offset for row in rows],
        "timestamp": [row.record.timestamp_ms for row in rows],
        "key": [row.record.key.decode() if row.record.key is not None else None for row in rows],
        "op": [row.op for row in rows],
        "ts_ms": [row.ts_ms for row in rows],
        "before": [row.before for row in rows],
        "after": [row.after for row in rows],
        "source": [row.source for row in rows],
        "transaction": [row.transaction for row in rows],
    }
    return write(pa.table(columns, schema=SCHEMA))


def write(table: pa.Table) -> bytes:
    """The Parquet file of ``table`` (of :data:`SCHEMA`), whatever its columns' chunks."""
    sink = pa.BufferOutputStream()
    # One chunk per column: pyarrow's bytes depend on how a column is chunked (where a
    # dictionary page overflows), and the chunks (the log's reads, DuckDB's batches) must not
    # decide a file's bytes. Done here, on the export's writer thread.
    pq.write_table(table.combine_chunks(), sink)
    return bytes(sink.getvalue().to_pybytes())
