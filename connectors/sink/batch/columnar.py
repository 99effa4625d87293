"""The Parquet columns of a file's records, decoded in one batch by DuckDB's JSON functions.

Decoding each envelope with orjson, keeping the parsed dicts and dumping the row images back
to JSON text cost about ten times what pyarrow then took to write the file (py-spy, issue 6).
Here the records' keys and values go into DuckDB as two Arrow string columns, and one query
extracts ``op``, ``ts_ms`` and the before/after/source/transaction blocks as JSON text:
vectorised C++ on every core, no Python object per record.

DuckDB writes an extracted block minified with its numbers exactly as the record spelled them
(orjson re-spells them: ``1e+20`` for ``100000000000000000000.0``, and loses the digits of
integers past 64 bits), so for the envelopes changehub's sources write, which orjson made,
the text is byte for byte the same as the per-record path's.

:func:`parquet_table` returns None when any record of the batch needs the per-record path
(:func:`~connectors.sink.batch.rows.export_row`), which says what is wrong with it: a key or
value that is not JSON, a value that is not an object, ``op`` not a string, ``ts_ms`` not a
64-bit integer, or Kafka Connect's schema-wrapped form (a ``payload`` field).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from log.api import LogRecord, RecordBlock

__all__ = ["Decoder", "binary_column"]

_BIG_ENDIAN = sys.byteorder == "big"

_VIEW = "_changehub_records"

# One parse of each value: json_extract with a list of paths gives each field's JSON text
# (the text 'null' for a JSON null, SQL NULL when absent); the checks then look at those
# small texts only. Every check is in ``ok``, so a batch is taken or left whole.
_QUERY = f"""
SELECT
  coalesce((k IS NULL OR json_valid(k)) AND (v IS NULL OR (
    starts_with(ltrim(v), '{{')
    AND coalesce(json_type(e[1]) IN ('VARCHAR', 'NULL'), true)
    AND coalesce(json_type(e[2]) IN ('BIGINT', 'UBIGINT', 'NULL'), true)
    AND e[7] IS NULL)), false) AS ok,
  e[1]->>'$' AS op,
  TRY_CAST(CAST(e[2] AS VARCHAR) AS BIGINT) AS ts_ms,
  json_type(e[2]) = 'UBIGINT' AND TRY_CAST(CAST(e[2] AS VARCHAR) AS BIGINT) IS NULL AS big,
  nullif(CAST(e[3] AS VARCHAR), 'null') AS before,
  nullif(CAST(e[4] AS VARCHAR), 'null') AS after,
  nullif(CAST(e[5] AS VARCHAR), 'null') AS source,
  nullif(CAST(e[6] AS VARCHAR), 'null') AS "transaction"
FROM (
  SELECT k, v, json_extract(v, ['$.op', '$.ts_ms', '$.before', '$.after', '$.source',
                                '$.transaction', '$.payload']) AS e
  FROM {_VIEW}
)
"""


def binary_column(lengths: bytes, data: bytes) -> pa.Array:
    """A large_binary array of items laid out as a log block holds them (little-endian i32
    lengths, -1 for null; the bytes concatenated), built from the buffers with pyarrow's
    kernels: no Python object per item."""
    n = len(lengths) // 4
    lens = pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(lengths)])
    valid = pc.greater_equal(lens, 0)
    sizes = pc.max_element_wise(lens, 0).cast(pa.int64())
    ends = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum_checked(sizes)])
    validity = None if pc.all(valid).as_py() is not False else valid.buffers()[1]
    return pa.Array.from_buffers(
        pa.large_binary(), n, [validity, ends.buffers()[1], pa.py_buffer(data)]
    )


def _int64s(values: array[int]) -> pa.Array:
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


class Decoder:
    """One in-memory DuckDB connection for the batches of one export run. Not thread-safe."""

    def __init__(self) -> None:
        self._db: duckdb.DuckDBPyConnection | None = None

    def parquet_table(self, records: Sequence[LogRecord], schema: pa.Schema) -> pa.Table | None:
        """``records`` as a table of ``schema`` (:mod:`.parquet`), or None (see the module doc)."""
        try:
            keys = pa.array([r.key for r in records], pa.binary()).cast(pa.string())
            values = pa.array([r.value for r in records], pa.binary()).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None  # not UTF-8: the per-record path names the record
        return self._table(
            pa.chunked_array([keys]), pa.chunked_array([values]),
            pa.array([r.offset for r in records], pa.int64()),
            pa.array([r.timestamp_ms for r in records], pa.int64()), schema,
        )

    def block_table(self, blocks: Sequence[RecordBlock], schema: pa.Schema) -> pa.Table | None:
        """The records of ``blocks`` (read with :meth:`log.api.Log.read_block`, in order) as
        a table of ``schema``, or None (as :meth:`parquet_table`). Each block is one chunk of
        the key and value columns: no Python object per record on the way to DuckDB."""
        if _BIG_ENDIAN or not blocks:
            return None  # the blocks' lengths are little-endian: take the per-record path
        try:
            keys = pa.chunked_array(
                [binary_column(b.key_lengths, b.keys) for b in blocks]).cast(pa.large_string())
            values = pa.chunked_array(
                [binary_column(b.value_lengths, b.values) for b in blocks]
            ).cast(pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None  # not UTF-8: the per-record path names the record
        offsets = pa.chunked_array([_int64s(b.offsets) for b in blocks]).combine_chunks()
        times = pa.chunked_array([_int64s(b.timestamps) for b in blocks]).combine_chunks()
        return self._table(keys, values, offsets, times, schema)

    def _table(self, keys: pa.ChunkedArray, values: pa.ChunkedArray, offsets: pa.Array,
               timestamps: pa.Array, schema: pa.Schema) -> pa.Table | None:
        if self._db is None:
            self._db = duckdb.connect()
        self._db.register(_VIEW, pa.table({"k": keys, "v": values}))
        try:
            decoded = self._db.sql(_QUERY).to_arrow_table()
        except duckdb.Error:
            return None  # e.g. a value that is not JSON at all
        finally:
            self._db.unregister(_VIEW)
        if decoded.num_rows != len(offsets) or not pc.all(decoded["ok"]).as_py() or pc.any(
            decoded["big"]
        ).as_py():
            return None
        columns = {
            "offset": offsets,
            "timestamp": timestamps.cast(schema.field("timestamp").type),
            "key": keys.cast(schema.field("key").type),
            **{name: decoded[name] for name in ("op", "ts_ms", "before", "after", "source",
                                                 "transaction")},
        }
        # chunked as the log's reads and DuckDB's batches were: parquet.write combines them
        return pa.table(columns, schema=schema)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
