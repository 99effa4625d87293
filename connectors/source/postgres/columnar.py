"""A chunk of ``COPY … TO STDOUT`` text rows -> snapshot read events, a column at a time.

Row by row, every value costs a few Python calls (split, convert, prefix, join), about 5 µs
a row: five times what Postgres needs to send it. Here a chunk of rows is cut into fields
with two C calls (``replace`` newlines by tabs, one ``split``; COPY text escapes both inside
values), each column is taken with one slice and mapped by its type's column converter
(``types.column_converter``: C-level loops for the common types), and rows, envelopes and
records are assembled with ``map``/``zip`` over those columns, so Python runs a handful of
statements per column, not per value.

The bytes are exactly those of the row-by-row mapping (a unit test compares both). Columns
holding a NULL (``\\N``) or an escaped character (``\\t``, ``\\\\`` …: any backslash) are
mapped value by value, the way the row-by-row path does it.

:meth:`ChunkEncoder.laid_out` (what snapshots use) skips the event objects too: the
chunk is cut into Arrow columns by Arrow's CSV reader, the common types' columns become
their JSON by Arrow kernels (:mod:`~connectors.source.postgres.arrow_json`; other columns by
their column converter, into Arrow arrays), and one ``binary_join_element_wise`` (C++)
splices every event with the envelope's constant pieces between them, giving the log's
value column (the events back to back) and, from the Arrow offsets, its length column,
with no Python call per row or per value. Per-row ``%`` formatting of a ~300-byte envelope
cost more than the columns' conversion.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence
from typing import Any, Final

from connectors.source.postgres import arrow_json
from connectors.source.postgres.arrow_json import ValueColumn
from connectors.source.postgres.arrow_json import cast as _cast
from connectors.source.postgres.pgoutput import JsonColumn
from connectors.source.postgres.schema import TableSchema
from connectors.source.postgres.types import ColumnConverter, column_converter
from hub.errors import SchemaError

__all__ = [
    "Blob",
    "ChunkEncoder",
    "LaidOut",
    "import_arrow",
    "last_line",
    "parse_copy_line",
    "unescape",
]

_NULL: Final = b"\\N"
_PASS_BYTES: Final = 8 * 1024
_ESCAPES: Final = {
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("v"): b"\v",
    ord("\\"): b"\\",
}


def unescape(field: bytes) -> bytes:
    """COPY text escapes: ``\\n``, ``\\t``, ``\\\\`` … and octal ``\\123`` / hex ``\\x7f``."""
    out = bytearray()
    i, n = 0, len(field)
    while i < n:
        c = field[i]
        if c != 0x5C or i + 1 == n:
            out.append(c)
            i += 1
            continue
        nxt = field[i + 1]
        if nxt in _ESCAPES:
            out += _ESCAPES[nxt]
            i += 2
        elif 0x30 <= nxt <= 0x37:
            j = i + 1
            while j < min(i + 4, n) and 0x30 <= field[j] <= 0x37:
                j += 1
            out.append(int(field[i + 1 : j], 8) & 0xFF)
            i = j
        elif nxt == ord("x") and i + 2 < n:
            j = i + 2
            while j < min(i + 4, n) and field[j : j + 1].isalnum():
                j += 1
            out.append(int(field[i + 2 : j], 16))
            i = j
        else:
            out.append(nxt)
            i += 2
    return bytes(out)


def parse_copy_line(line: bytes) -> list[bytes | None]:
    """One line of ``COPY … TO STDOUT`` text output (without its newline) as field values."""
    fields: list[bytes | None] = list(line.split(b"\t"))
    if b"\\" in line:
        for i, f in enumerate(fields):
            if f == b"\\N":
                fields[i] = None
            elif f is not None and b"\\" in f:
                fields[i] = unescape(f)
    return fields


# (key lengths, keys) and (value lengths, values): the lengths as little-endian i32 bytes
# (-1: the null key of a keyless table's row), the items back to back (a view of an Arrow
# buffer, or bytes).
Blob = bytes | memoryview
LaidOut = tuple[tuple[bytes, Blob], tuple[bytes, Blob]]
_NULL_LENGTH: Final = b"\xff\xff\xff\xff"  # -1
_OFFSET32: Final = struct.Struct("<i")
_OFFSET64: Final = struct.Struct("<q")
# Events up to this many bytes in a chunk are spliced with 32-bit offsets (Arrow's binary,
# as the CSV reader's columns come): no cast of the columns or of the lengths. Beyond it,
# 64-bit (large_binary).
_SMALL_SPLICE: Final = (1 << 31) - 1
# Arrow's buffers are little-endian, as the log's columns are: elsewhere, the lists' way.
_ARROW_LAYOUT: Final = sys.byteorder == "little"


def import_arrow() -> None:
    """Import pyarrow now: a snapshot worker does it while it starts, so that its first
    chunk does not wait for it."""
    _arrow()
    arrow_json.import_arrow()


def _arrow() -> Any:
    """pyarrow, imported on first use: only snapshots splice (see ``arrow_json._arrow``)."""
    import pyarrow

    return pyarrow


def _arrays(columns: Sequence[list[bytes]]) -> list[Any]:
    pa = _arrow()
    binary = pa.large_binary()  # 64-bit offsets: a chunk may exceed 2 GiB of events
    return [pa.array(column, binary) for column in columns]


def _pieces(
    start: bytes, prefixes: Sequence[bytes], columns: Sequence[ValueColumn], end: bytes
) -> list[bytes]:
    """The constant pieces around the columns' values in ``start + '"a":' + a + ',"b":' + b
    + … + end``, each column's opening and closing included."""
    pieces = [start + prefixes[0] + columns[0].opening]
    for prefix, before, column in zip(prefixes[1:], columns, columns[1:], strict=False):
        pieces.append(before.closing + b"," + prefix + column.opening)
    pieces.append(columns[-1].closing + end)
    return pieces


def _splice(pieces: Sequence[bytes], columns: Sequence[ValueColumn]) -> tuple[bytes, memoryview]:
    """``pieces[0] + a[i] + pieces[1] + b[i] + … + pieces[-1]`` for every row ``i`` of the
    columns' values (a, b, …): the length column (little-endian i32) and the items back to
    back."""
    pa = _arrow()
    n = len(columns[0].values)
    most = sum(c.values.nbytes for c in columns) + n * sum(map(len, pieces))
    small = most <= _SMALL_SPLICE
    binary = pa.binary() if small else pa.large_binary()
    args: list[Any] = []
    for piece, column in zip(pieces, columns, strict=False):
        values = column.values
        args += [
            pa.scalar(piece, binary),
            values if values.type == binary else _cast(values, binary),
        ]
    args += [pa.scalar(pieces[-1], binary), pa.scalar(b"", binary)]  # the last: the separator
    joined = arrow_json.call("binary_join_element_wise", *args)
    _, offsets, data = joined.buffers()
    lengths = arrow_json.call("binary_length", joined)  # int32 for binary, int64 for large
    if small:
        (end,) = _OFFSET32.unpack_from(offsets, 4 * n)
    else:
        (end,) = _OFFSET64.unpack_from(offsets, 8 * n)
        lengths = _cast(lengths, pa.int32())
    return lengths.buffers()[1].to_pybytes()[: 4 * n], memoryview(data)[:end]


def _pct(b: bytes) -> bytes:
    """``b`` as a literal part of a ``%`` format."""
    return b.replace(b"%", b"%%")


class ChunkEncoder:
    """Encodes chunks of one table's COPY text rows as ``r`` events. Not thread-safe."""

    def __init__(self, schema: TableSchema) -> None:
        self._schema = schema
        self._ncols = len(schema.columns)
        self._columns: list[tuple[JsonColumn, ColumnConverter]] = [
            (column, column_converter(column[1])) for column in schema.json_columns
        ]
        # One format per row makes the whole event from the columns' JSON values:
        # head + '{"id":%b,"name":%b,…}' + suffix, and the key the same way.
        self._row = b"{%b}" % b",".join(
            _pct(prefix) + b"%b" for prefix, _, _ in schema.json_columns
        )
        index = schema.key_index
        self._key_index = index
        # The columns' names as JSON ('"id":'), for the constant pieces of laid_out's
        # splice: head + '{"id":', ',"name":"', …, '}' + suffix, with the openings and
        # closings of the columns' values between (a quote where a kernel left it out).
        self._prefixes = [prefix for prefix, _, _ in schema.json_columns]
        self._key = (
            None
            if index is None
            else b"{%b}" % b",".join(_pct(schema.json_columns[i][0]) + b"%b" for i in index)
        )

    def encode(
        self,
        lines: Sequence[bytes | bytearray | memoryview],
        head: bytes,
        suffix: bytes,
    ) -> tuple[list[bytes] | None, list[bytes]]:
        """Events ``head + {row} + suffix`` of ``lines`` (each a COPY text row with its
        newline) as two columns: the keys by the table's key (None for a keyless table) and
        the values, in order."""
        if not lines:
            return (None if self._key is None else []), []
        # A few KiB of text per pass: the temporary columns then fit in memory the
        # allocator keeps. Passes over a whole chunk (megabytes) had the allocator return
        # and fault in its memory again every chunk, which cost more than it saved.
        step = max(8, min(512, _PASS_BYTES // max(1, len(lines[0]))))
        envelope = _pct(head) + self._row + _pct(suffix)
        if len(lines) <= step:
            return self._pass(lines, envelope)
        keys: list[bytes] | None = None if self._key is None else []
        values: list[bytes] = []
        for start in range(0, len(lines), step):
            k, v = self._pass(lines[start : start + step], envelope)
            values += v
            if keys is not None and k is not None:
                keys += k
        return keys, values

    def laid_out(self, block: bytes, nrows: int, head: bytes, suffix: bytes) -> LaidOut:
        """The keys and values of :meth:`encode` for the ``nrows`` COPY text lines in
        ``block`` (each with its newline), laid out as the log's columns (lengths, and the
        items back to back), made without a Python object per event."""
        if not _ARROW_LAYOUT or not self._columns or not nrows:
            lines = block.split(b"\n")[:-1]
            keys, values = self.encode([line + b"\n" for line in lines], head, suffix)
            null_keys = (_NULL_LENGTH * nrows, b"")
            return (null_keys if keys is None else _as_laid_out(keys)), _as_laid_out(values)
        columns = self._arrow_columns(block, nrows) or self._listed_columns(block)
        prefixes = self._prefixes
        events = _splice(_pieces(head + b"{", prefixes, columns, b"}" + suffix), columns)
        index = self._key_index
        if index is None:
            return (_NULL_LENGTH * nrows, b""), events
        key = [columns[i] for i in index]
        return _splice(_pieces(b"{", [prefixes[i] for i in index], key, b"}"), key), events

    def _arrow_columns(self, block: bytes, nrows: int) -> list[ValueColumn] | None:
        """The columns' JSON, cut by Arrow's CSV reader and made by kernels where the
        types allow (:mod:`arrow_json`), else value by value; None if the reader cannot
        cut ``block``."""
        raws = arrow_json.split(block, self._ncols, nrows)
        if raws is None:
            return None
        pa = _arrow()
        escaped = b"\\" in block
        out = []
        for (column, convert), raw in zip(self._columns, raws, strict=True):
            fast = arrow_json.value_column(column[1], raw, escaped=escaped)
            if fast is None:
                values: list[bytes] = raw.to_pylist()
                if escaped and b"\\" in b"\t".join(values):
                    values = self._one_by_one(column, values)
                else:
                    values = convert(values)
                fast = ValueColumn(pa.array(values, pa.large_binary()))
            out.append(fast)
        return out

    def _listed_columns(self, block: bytes) -> list[ValueColumn]:
        """The columns' JSON, split and converted in Python (see :meth:`_convert`)."""
        columns: list[list[bytes]] = [[] for _ in self._columns]
        pos, size = 0, len(block)
        while pos < size:  # passes of whole lines, a few KiB each (see encode)
            end = block.find(b"\n", pos + _PASS_BYTES - 1) + 1 or size
            part = block[pos:end]
            for column, values in zip(columns, self._convert(part, part.count(b"\n")), strict=True):
                column.extend(values)
            pos = end
        return [ValueColumn(array) for array in _arrays(columns)]

    def _pass(
        self, lines: Sequence[bytes | bytearray | memoryview], envelope: bytes
    ) -> tuple[list[bytes] | None, list[bytes]]:
        columns = self._convert(b"".join(lines), len(lines))
        events = list(map(envelope.__mod__, zip(*columns, strict=True)))
        index, key = self._key_index, self._key
        if index is None or key is None:
            return None, events
        keys = list(map(key.__mod__, zip(*(columns[i] for i in index), strict=True)))
        return keys, events

    def _convert(self, block: bytes, nrows: int) -> list[list[bytes]]:
        """The JSON values of the ``nrows`` lines in ``block``, a list per column."""
        ncols = self._ncols
        fields = block.replace(b"\n", b"\t").split(b"\t")
        if len(fields) != nrows * ncols + 1 or fields[-1]:
            raise SchemaError(
                f"a snapshot chunk of {self._schema.qualified} has {len(fields) - 1} values "
                f"in {nrows} rows, expected {ncols} per row ({', '.join(self._schema.columns)})"
            )
        escaped = b"\\" in block
        columns: list[list[bytes]] = []
        for i, (column, convert) in enumerate(self._columns):
            values = fields[i : nrows * ncols : ncols]
            if escaped and b"\\" in b"\t".join(values):
                columns.append(self._one_by_one(column, values))
            else:
                columns.append(convert(values))
        return columns

    @staticmethod
    def _one_by_one(column: JsonColumn, values: list[bytes]) -> list[bytes]:
        """A column with NULLs or escapes, value by value."""
        convert = column[1]
        out = []
        for v in values:
            if v == _NULL:
                out.append(b"null")
                continue
            text = unescape(v) if b"\\" in v else v
            out.append(text if convert is None else convert(text))
        return out


def last_line(block: bytes) -> bytes:
    """The last of the COPY text lines in ``block``, without its newline."""
    return block[block.rfind(b"\n", 0, len(block) - 1) + 1 : -1]


def _as_laid_out(items: list[bytes]) -> tuple[bytes, bytes]:
    lengths = array("i", map(len, items))
    if sys.byteorder == "big":
        lengths.byteswap()
    return lengths.tobytes(), b"".join(items)
