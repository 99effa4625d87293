"""A batch of change events as bulk lines, built without a Python object per event.

The per-record path (:meth:`SearchSink._add <connectors.sink.search.sink.SearchSink>`)
parses every envelope with orjson into dicts, makes an :class:`~.documents.Action` and
dumps the row back to JSON: about half of the pipeline's Python per change (py-spy, issue
5). Here a batch's keys and values go into DuckDB as two Arrow string columns, one query
extracts each event's ``op``, its ``after`` image as JSON text and its source's schema and
table (vectorised C++, with the interpreter lock released), and pyarrow's string kernels
put each document's two NDJSON lines together::

    {"index":{"_index":"items","_id":"42","version":7,"version_type":"external"}}
    {"id":42,"name":"item 42",...}

The bytes are those :meth:`~.documents.Action.encode` writes for the same record (the
per-record path is the reference; ``tests/unit/search/test_columnar.py`` compares the two):
the action line is spelled the same way (index and id as orjson writes JSON strings, the
version ``offset + 1`` in decimal), and DuckDB writes the extracted ``after`` minified, keys
in their order, strings escaped as orjson escapes them, so that for an after image orjson
made it is mostly the very text ``orjson.dumps(orjson.loads(after))`` gives. Where the two
writers may spell a value differently — a number with a fraction or exponent, or with 19
digits or more (DuckDB writes ``100000000000000000000.0`` where orjson writes ``1e+20``),
``-0``, a ``\\u`` escape (DuckDB writes ``\\u001F``, orjson ``\\u001f``) — found by a
regular expression over the minified text that may also match inside a string, that row's
text is parsed and written again by orjson (DuckDB's text holds the same values: integers
digit for digit, doubles in shortest round-trip form).

:meth:`LineBuilder.build` returns None, and the batch takes the per-record path whole, when
any of its records needs it: a tombstone, a delete, truncate or other op, an ``after`` that
is not an object, Kafka Connect's wrapped form (a ``payload`` field), a key or value that is
not UTF-8 JSON, or JSON that DuckDB's reader takes and orjson's refuses (``NaN``,
``Infinity``, a trailing comma), a key that is not an object or gives no id, or two
events of one document in the batch (the per-record path keeps the last one only).

Not looked for: a name repeated within one JSON object (DuckDB's extraction keeps the first
``after`` of an envelope, and both of a row's repeated columns, where orjson keeps the last
one). Finding it costs a second parse of every record (``json_keys``: a third of the query's
time), and no writer of change events makes one: changehub's sources dump dicts, which
cannot hold a name twice, and so does Debezium's Jackson.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from connectors.envelope import decode_key
from connectors.sink.search.bulk import PreparedBulk
from connectors.sink.search.documents import Action, BadRecordError, document_id
from log.api import LogRecord

__all__ = ["LineBuilder", "Lines"]

_VIEW = "_changehub_search_records"

# Numbers DuckDB and orjson may spell differently, and \u escapes (see the module doc). The
# text is minified, so a number follows '":' (a member), "[" or "," (an element), and the
# "," follows the end of a value: so "12:30:00.5" in a string is not taken for a number.
_NUMBER_AT = r'(?:":|[0-9el"}\]],|\[)'
_RESPELLED = (rf'{_NUMBER_AT}-?[0-9]+[.eE]|{_NUMBER_AT}-?[0-9]{{19}}|{_NUMBER_AT}-0[,}}\]]'
              r'|\\u')
# What DuckDB's reader takes and orjson's refuses (the per-record path dead-letters it):
# NaN, Infinity, trailing commas.
_TRAILING_COMMA = r',[ \t\r\n]*[}\]]'

# One parse of each envelope (json_extract of several paths; its texts are minified, so
# the op and the after image's kind are read from them without parsing again).
_QUERY = f"""
SELECT
  coalesce(starts_with(v, '{{')
    AND e[1] IN ('"c"', '"u"', '"r"')
    AND starts_with(CAST(e[2] AS VARCHAR), '{{')
    AND e[5] IS NULL
    AND NOT (contains(v, 'NaN') OR contains(v, 'Infinity')
             OR regexp_matches(v, '{_TRAILING_COMMA}')), false) AS ok,
  CAST(e[2] AS VARCHAR) AS after,
  regexp_matches(CAST(e[2] AS VARCHAR), '{_RESPELLED}') AS respelled,
  CAST(e[3] AS VARCHAR) AS schema_json,
  CAST(e[4] AS VARCHAR) AS table_json
FROM (
  SELECT v, json_extract(v, ['$.op', '$.after', '$.source.schema', '$.source.table',
                             '$.payload']) AS e
  FROM {_VIEW}
)
"""

# The one-column integer key, as changehub's sources write it (orjson): its digits are what
# str() of the decoded integer gives (no leading zeros, no "-0"; 18 digits fit any int64).
_INT_KEY = r'^\{"(?:[^"\\]|\\.)*":(?P<id>-?[1-9][0-9]{0,17}|0)\}$'

# A record's fields by position (C-level getters: a batch's columns without a Python loop).
_TOPIC, _OFFSET, _KEY, _VALUE = (itemgetter(LogRecord._fields.index(f))
                                 for f in ("topic", "offset", "key", "value"))

_ABSENT = "\x01"  # stands for a missing schema/table: JSON text never holds a raw \x01


@dataclass
class Lines:
    """Documents' bulk lines, one pair per event, and what an :class:`Action` is made from
    if one of them has to be named or sent again."""

    lines: pa.LargeStringArray
    indexes: pa.Array  # the index name of each line (strings)
    ids: pa.Array  # the document id of each line as a JSON string
    records: list[LogRecord]

    def __len__(self) -> int:
        return len(self.records)

    def slice(self, start: int, stop: int) -> Lines:
        n = stop - start
        return Lines(self.lines.slice(start, n), self.indexes.slice(start, n),
                     self.ids.slice(start, n), self.records[start:stop])

    def body(self) -> bytes:
        """The lines back to back: the bulk request's body, one copy of their bytes."""
        offsets, data = _offsets(self.lines), self.lines.buffers()[2]
        start, stop = offsets[0], offsets[len(self)]
        return b"" if data is None else data.slice(start, stop - start).to_pybytes()

    def byte_offsets(self) -> Sequence[int]:
        """Where each line pair starts in :meth:`body`'s frame (plus its end)."""
        return _offsets(self.lines)

    def concat(self, more: Lines) -> Lines:
        return Lines(pa.concat_arrays([self.lines, more.lines]),
                     pa.concat_arrays([self.indexes, more.indexes]),
                     pa.concat_arrays([self.ids, more.ids]), self.records + more.records)

    def prepared(self) -> PreparedBulk:
        return PreparedBulk(self.body(), len(self), self._items)

    def _items(self, prepared: PreparedBulk) -> list[tuple[Action, bytes]]:
        indexes, ids, lines = self.indexes.to_pylist(), self.ids.to_pylist(), self.lines
        items = []
        for i, record in enumerate(self.records):
            action = Action("index", indexes[i], orjson.loads(ids[i]), record.offset + 1)
            prepared.records[id(action)] = record
            items.append((action, lines[i].as_py().encode()))
        return items


def _as_orjson_writes(after: pa.LargeStringArray, respelled: pa.BooleanArray) -> Any:
    """``after`` with the texts DuckDB may have spelled otherwise than orjson written by
    orjson (from their values: DuckDB's text holds them exactly, its doubles shortest
    round-trip); None if orjson refuses one (the per-record path dead-letters it)."""
    if not pc.any(respelled).as_py():
        return after
    texts = pc.filter(after, respelled).to_pylist()
    try:
        redone = [orjson.dumps(orjson.loads(t)).decode() for t in texts]
    except orjson.JSONDecodeError:
        return None
    return pc.replace_with_mask(after, respelled, pa.array(redone, pa.large_string()))


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def _offsets(lines: pa.LargeStringArray) -> Sequence[int]:
    buffer = lines.buffers()[1]
    assert buffer is not None
    view = memoryview(buffer).cast("q")
    return view[lines.offset: lines.offset + len(lines) + 1]


class LineBuilder:
    """One in-memory DuckDB connection for the sink's batches. Used from one thread."""

    def __init__(self, version_type: str) -> None:
        self._db: duckdb.DuckDBPyConnection | None = None
        self._action_tail = _text(',"version_type":' + orjson.dumps(version_type).decode()
                                  + "}}\n")

    def build(
        self, records: Sequence[LogRecord], index_for: Callable[[str, Any], str],
    ) -> Lines | None:
        """The bulk lines of ``records``, all upserts, or None (see the module doc).
        ``index_for(topic, source)`` names an event's index (:meth:`.Indexes.name_for`)."""
        try:
            keys = pa.array(list(map(_KEY, records)), pa.binary()).cast(pa.string())
            values = pa.array(list(map(_VALUE, records)), pa.binary()).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None  # not UTF-8: the per-record path names the record
        if keys.null_count or values.null_count:
            return None  # a tombstone, or a record without a key
        if self._db is None:
            self._db = duckdb.connect(config={"threads": 1})
        self._db.register(_VIEW, pa.table({"v": values}))
        try:
            decoded = self._db.sql(_QUERY).to_arrow_table()
        except duckdb.Error:
            return None  # a value that is not JSON at all
        finally:
            self._db.unregister(_VIEW)
        if decoded.num_rows != len(records) or not pc.all(decoded["ok"]).as_py():
            return None
        ids = self._ids(keys)
        if ids is None:
            return None
        indexes, index_json = self._indexes(records, decoded, index_for)
        # (index, id) pairs must be distinct; with one index (the usual batch) the ids must
        documents = ids if isinstance(index_json, pa.Scalar) else pc.binary_join_element_wise(
            indexes, ids, "\x00")
        if pc.count_distinct(documents).as_py() != len(records):
            return None  # two events of one document: the per-record path keeps the last
        versions = pc.cast(pc.add(pa.array(list(map(_OFFSET, records)), pa.int64()), 1),
                           pa.large_string())
        after = _as_orjson_writes(decoded["after"].combine_chunks().cast(pa.large_string()),
                                  decoded["respelled"].combine_chunks())
        if after is None:
            return None
        lines = pc.binary_join_element_wise(
            _text('{"index":{"_index":'), index_json, _text(',"_id":'),
            ids.cast(pa.large_string()), _text(',"version":'), versions, self._action_tail,
            after, _text("\n"), _text(""),
        )
        return Lines(lines, indexes, ids, list(records))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _ids(self, keys: pa.StringArray) -> pa.StringArray | None:
        """Each key's document id as a JSON string (:func:`.document_id`)."""
        found = pc.extract_regex(keys, _INT_KEY)
        if found.null_count == 0:
            return pc.binary_join_element_wise('"', found.field("id"), '"', "")
        out: list[bytes] = []
        for text in keys.to_pylist():
            try:
                key = decode_key(text.encode())
            except ValueError:
                return None
            if not isinstance(key, dict):
                return None
            try:
                out.append(orjson.dumps(document_id(key)))
            except BadRecordError:
                return None
        return pa.array(out, pa.binary()).cast(pa.string())

    @staticmethod
    def _indexes(
        records: Sequence[LogRecord], decoded: pa.Table, index_for: Callable[[str, Any], str],
    ) -> tuple[pa.Array, pa.Array | pa.Scalar]:
        """Each event's index name, and the same as a JSON string (one scalar when all go to
        one index), from its topic and its source's schema and table (named once per
        distinct combination)."""
        schemas = pc.fill_null(decoded["schema_json"].combine_chunks(), _ABSENT)
        tables = pc.fill_null(decoded["table_json"].combine_chunks(), _ABSENT)
        topics = set(map(_TOPIC, records))
        if len(topics) == 1 and pc.count_distinct(schemas).as_py() == 1 \
                and pc.count_distinct(tables).as_py() == 1:
            name = _name(index_for, topics.pop(), schemas[0].as_py(), tables[0].as_py())
            return (pa.repeat(pa.scalar(name, pa.string()), len(records)),
                    pa.scalar(orjson.dumps(name).decode(), pa.large_string()))
        combined = pc.binary_join_element_wise(
            pa.array(list(map(_TOPIC, records)), pa.string()), schemas, tables, "\x00",
        ).dictionary_encode()
        names = [_name(index_for, *entry.split("\x00"))
                 for entry in combined.dictionary.to_pylist()]
        name_array = pa.array(names, pa.string())
        json_array = pa.array([orjson.dumps(n) for n in names], pa.binary()).cast(
            pa.large_string())
        return name_array.take(combined.indices), json_array.take(combined.indices)


def _name(index_for: Callable[[str, Any], str], topic: str, schema: str, table: str) -> str:
    """The index of ``topic``'s events whose source has this schema and table (JSON texts,
    or ``_ABSENT``): what the per-record path gets from the decoded ``source``."""
    source = {k: orjson.loads(v) for k, v in (("schema", schema), ("table", table))
              if v != _ABSENT}
    return index_for(topic, source)
