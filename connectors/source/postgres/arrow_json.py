"""A snapshot chunk's COPY text cut into Arrow columns, and the common types' JSON made from
them by Arrow kernels: no Python object per value.

Profiled (py-spy, the worker process of a 1M-row snapshot), converting the columns in Python
(``bytes.split``, a ``map`` per column, Arrow arrays made from the lists) cost ~1.7 µs a row,
more than Postgres needs to send it. Here pyarrow's CSV reader (C++, tab-separated, no
quoting, no escapes) cuts the block into one binary column per table column, and each column
of a type whose text maps to JSON by a simple rule becomes its JSON with a few kernels over
the whole column, or with nothing at all: the quotes (and timestamptz's ``Z``) go into the
constant pieces the events are spliced from (:class:`ValueColumn`'s ``opening`` and
``closing``).

The bytes are exactly those of the per-value converters (``types.py``): a rule is applied to
a column only when it holds for every value of it, checked on the column, and the column is
otherwise converted value by value, the way the row-by-row path does it. Any column holding
a backslash (a NULL ``\\N`` or an escaped character) goes value by value too. The whole
chunk falls back to the caller when the reader cannot cut it exactly (see :func:`split`).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Any, Final

from connectors.source.postgres.types import JsonConverter, column_kind

__all__ = ["ValueColumn", "call", "cast", "import_arrow", "plain_text", "split", "value_column"]

_BOM: Final = b"\xef\xbb\xbf"  # the CSV reader drops one at the start of its input
_MAX_BLOCK: Final = 1 << 30  # larger blocks: the caller's way (the reader's block size is an int32)
# Bytes that JSON strings escape (orjson: control characters, '"', '\'), but for the tab and
# the newline, which COPY text never holds inside a value (it escapes them with '\').
_CONTROL: Final = bytes(b for b in range(0x20) if b not in (0x09, 0x0A))
_NEEDS_ESCAPE: Final = r'[\x00-\x1f"\\]'
_DIGITS: Final = [b"%d" % d for d in range(10)]
_OFFSET32: Final = struct.Struct("<i")


@dataclass(frozen=True, slots=True)
class ValueColumn:
    """A column's JSON values: ``opening + values[i] + closing`` is row ``i``'s JSON."""

    values: Any  # an Arrow binary or large_binary array
    opening: bytes = b""
    closing: bytes = b""


def import_arrow() -> None:
    """Import pyarrow's modules used here now (see ``columnar.import_arrow``)."""
    _arrow()


@functools.cache
def _arrow() -> tuple[Any, Any, Any]:
    """pyarrow, its compute functions' registry and its CSV reader, imported on first use
    (only snapshots need them).

    Not ``pyarrow.compute``: importing it generates a Python wrapper with a signature and
    a docstring for each of its ~300 functions, ~75 ms of CPU in every process that
    snapshots, the worker's start among them (on the snapshot's clock). The functions are
    called by name instead (:func:`call`), as those wrappers do."""
    import pyarrow
    import pyarrow._compute
    import pyarrow.csv

    return pyarrow, pyarrow._compute, pyarrow.csv


def call(name: str, *args: Any, options: Any = None) -> Any:
    """Arrow's compute function ``name`` (``pyarrow.compute.<name>``) of ``args``."""
    return _arrow()[1].call_function(name, list(args), options)


def cast(array: Any, to: Any) -> Any:
    """``array`` as type ``to``: raises ``ArrowInvalid`` where a value does not fit (a
    binary value that is not UTF-8, cast to string)."""
    return call("cast", array, options=_arrow()[1].CastOptions.safe(to))


def split(block: bytes, ncols: int, nrows: int) -> list[Any] | None:
    """The ``nrows`` COPY text lines of ``block`` (each ending in a newline) as ``ncols``
    Arrow binary columns of their raw text (escapes and ``\\N`` kept), or None when the CSV
    reader could not be sure to cut them as COPY did: the caller then splits in Python,
    which also reports a row of the wrong width."""
    if not nrows or block.startswith(_BOM) or len(block) >= _MAX_BLOCK:
        return None
    pa, _, csv = _arrow()
    names = [str(i) for i in range(ncols)]
    try:
        table = csv.read_csv(
            pa.py_buffer(block),
            read_options=csv.ReadOptions(
                column_names=names, use_threads=False, block_size=len(block) + 1
            ),
            # COPY's text format: tabs between values, a newline after each row, no quoting;
            # tabs, newlines and carriage returns inside values are escaped with a
            # backslash, which the reader leaves alone (escape_char=False).
            parse_options=csv.ParseOptions(
                delimiter="\t",
                quote_char=False,
                escape_char=False,
                double_quote=False,
                newlines_in_values=False,
                ignore_empty_lines=False,  # a one-column row of an empty string
            ),
            convert_options=csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.binary()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, ValueError):
        return None  # a row of the wrong width, …
    if table.num_rows != nrows or table.num_columns != ncols:
        return None
    return [column.combine_chunks() for column in table.columns]


def value_column(convert: JsonConverter, raw: Any, *, escaped: bool) -> ValueColumn | None:
    """The JSON of the raw COPY text column ``raw`` (from :func:`split`) of a column whose
    values ``convert`` maps, made by kernels where its type's rule holds for every value;
    None when it does not, or the column holds a backslash (a NULL, an escape): the caller
    then converts it value by value. ``escaped``: the chunk holds a backslash somewhere."""
    pa, pc, _ = _arrow()
    if escaped and _any(call("match_substring", raw, options=pc.MatchSubstringOptions("\\"))):
        return None
    return _rule(column_kind(convert), raw, pa, pc)


def _rule(kind: str, raw: Any, pa: Any, pc: Any) -> ValueColumn | None:
    """``kind``'s rule (``types.column_kind``) over the column, if it holds for every value;
    each gives exactly what the converter named in its comment gives every value."""
    if kind == "same":  # integers, json: the text is the JSON
        return ValueColumn(raw)
    if kind == "quoted":  # _quoted: numeric, uuid, inet …, b'"%b"' % text
        return ValueColumn(raw, b'"', b'"')
    if kind == "text":  # _text_json: orjson.dumps(text.decode("utf-8"))
        try:
            text = cast(raw, pa.string())  # valid UTF-8, or the converter's decode fails
        except pa.ArrowInvalid:
            return None
        # Nothing to escape: the JSON string is the text in quotes. Two C passes over the
        # column's bytes, or a regex over its values only when one of those bytes is there.
        escapes = pc.MatchSubstringOptions(_NEEDS_ESCAPE)
        if not plain_text(_data(raw)) and _any(
            call("match_substring_regex", text, options=escapes)
        ):
            return None
        return ValueColumn(raw, b'"', b'"')
    if kind == "bool":  # _bool_json: b"true" if text == b"t" else b"false"
        binary = pa.binary()
        is_t = call("equal", raw, pa.scalar(b"t", binary))
        return ValueColumn(
            call("if_else", is_t, pa.scalar(b"true", binary), pa.scalar(b"false", binary))
        )
    if kind == "timestamptz":
        # _timestamptz_json's common case, every value: longer than 19, a space at 10, "+00"
        # at the end -> '"' + text[:10] + "T" + text[11:-3] + 'Z"'.
        if (
            _lengths(raw)[0] > 19
            and _space_at_10(raw, pa, pc)
            and _all(call("ends_with", raw, options=pc.MatchSubstringOptions("+00")))
        ):
            t = call("binary_replace_slice", raw, options=pc.ReplaceSliceOptions(10, 11, "T"))
            return ValueColumn(call("binary_slice", t, options=pc.SliceOptions(0, -3)), b'"', b'Z"')
        return None
    if kind == "timestamp":
        # _timestamp_json's common case, every value: at least 19 long, a space at 10, a digit
        # last -> '"' + text[:10] + "T" + text[11:] + '"'.
        if _lengths(raw)[0] >= 19 and _space_at_10(raw, pa, pc):
            last = call("binary_slice", raw, options=pc.SliceOptions(-1))
            digits = pc.SetLookupOptions(pa.array(_DIGITS, pa.binary()))
            if _all(call("is_in", last, options=digits)):
                t = call("binary_replace_slice", raw, options=pc.ReplaceSliceOptions(10, 11, "T"))
                return ValueColumn(t, b'"', b'"')
        return None
    if kind == "date":  # _date_json: b'"%b"' % text when it is 10 long
        if _lengths(raw) == (10, 10):
            return ValueColumn(raw, b'"', b'"')
        return None
    return None  # floats, arrays, ranges …: value by value


def plain_text(text: bytes) -> bool:
    """Whether ``text`` holds no byte that a JSON string escapes, but for tabs and newlines
    (which COPY text holds only between values)."""
    return b'"' not in text and len(text.translate(None, _CONTROL)) == len(text)


def _data(raw: Any) -> bytes:
    """The values of the binary array ``raw`` back to back (its data buffer's used part)."""
    _, offsets, data = raw.buffers()
    (start,) = _OFFSET32.unpack_from(offsets, 4 * raw.offset)
    (end,) = _OFFSET32.unpack_from(offsets, 4 * (raw.offset + len(raw)))
    return memoryview(data)[start:end].tobytes() if data is not None else b""


def _lengths(raw: Any) -> tuple[int, int]:
    """The shortest and the longest value's length, in bytes."""
    both = call("min_max", call("binary_length", raw)).as_py()
    return int(both["min"]), int(both["max"])


def _space_at_10(raw: Any, pa: Any, pc: Any) -> bool:
    tenth = call("binary_slice", raw, options=pc.SliceOptions(10, 11))
    return _all(call("equal", tenth, pa.scalar(b" ", pa.binary())))


def _all(mask: Any) -> bool:
    return bool(call("all", mask).as_py())


def _any(mask: Any) -> bool:
    return bool(call("any", mask).as_py())
