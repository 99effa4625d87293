"""A ``write`` of upsert events decoded as a whole, by DuckDB's JSON functions, into Arrow.

Decoding each record with orjson, fitting its values one by one (:meth:`TableShape.fit`) and
collapsing per key in Python cost ~25 us of CPU a record, three quarters of the sink's time
into DuckDB (bench/warehouse_bench.py, issue 6). Here the keys and values of a ``write``
go into an in-memory DuckDB as two Arrow string columns, and one query extracts every column
of the after images (JSON pointer paths, one parse of each value and key), checks each
value's JSON text against its column's kind and casts it: vectorised C++, no Python object
per record.
The flush then merges the Arrow table (:func:`.upsert.merge_arrow`) or, for other databases,
takes its rows as Python values.

Exactness comes first: :meth:`Decoder.decode` returns None, and the sink takes the
per-record path (which dead-letters what is wrong and fits what is right), unless the result
is certainly what the per-record path would give. That is, every record of the write:

* is a ``c``, ``u`` or ``r`` event (a string ``op``) of one table (the same ``source``
  fields of the ``table`` template as the first record), not in Kafka Connect's
  schema-wrapped form;
* has an ``after`` object with exactly the columns of the first record's (an image that
  leaves a column out, as PostgreSQL does with unchanged TOASTed values, must leave the
  target's value alone, which a column of nulls would not), and a key object with the
  first record's key columns, none null;
* holds, in each column, only values the per-record path would store unchanged: integers
  within 64 bits in integer columns; finite numbers in float columns; true/false in boolean
  columns; strings in text columns (anything else is converted or refused per record: the
  per-record path says which). A column the table does not have yet takes its kind from its
  first non-null value, as ``fit`` does; one that is null throughout is left out, as per
  record;
* contains nothing DuckDB accepts and orjson refuses: NaN or Infinity, numbers beyond a
  double's range, trailing commas. This check is conservative (it looks at the text, and
  may send a record whose string contains e.g. ``: nan`` the per-record way).

Columns of other kinds (decimal, dates, JSON … in tables created beforehand) and keys of
float kind (``0.0`` and ``-0.0`` are one key to SQL, two to the per-record collapse) also
go the per-record way.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from connectors.envelope import unwrap
from connectors.sink.sql.evolution import Kind, TableShape
from connectors.sink.sql.naming import TableName, render
from log.api import LogRecord

__all__ = ["Decoded", "Decoder", "First", "collapse"]

_VIEW = "_changehub_records"
_INT64 = 2**63

# What orjson refuses and DuckDB's parser takes (NaN, Infinity, 1e400, [1,]), looked for in
# the text: a number-like token right after a structural character, or a comma before a
# closing bracket. Inside strings it may match too: that only sends the write per record.
_LENIENT = (
    r",\s*[}\]]"
    r"|[:\[,]\s*[-+]?(?i:nan|inf)"
    r"|[:\[,]\s*-?[0-9.]+[eE]\+?[0-9]{3,}"
    r"|[0-9]{300,}"
)

# Per kind: the JSON types (json_type) stored unchanged, and the cast of a value.
_TYPES: dict[str, tuple[str, ...]] = {
    "integer": ("BIGINT", "UBIGINT"),
    "float": ("BIGINT", "UBIGINT", "DOUBLE"),
    "boolean": ("BOOLEAN",),
    "text": ("VARCHAR",),
}
# The kind a new column takes from its first non-null value's JSON type (kind_of_value);
# UBIGINT (beyond 64 bits) would be text, which a JSON number is not stored as unchanged.
_NEW_KIND: dict[str, Kind] = {
    "BIGINT": "integer", "DOUBLE": "float", "BOOLEAN": "boolean",
    "VARCHAR": "text",
}
_SOURCE_FIELDS = ("name", "db", "schema", "table")
_MAX_VIEWS = 64  # decoding queries kept as views (one per table and set of columns)


class First(NamedTuple):
    """What a write's first record sets for the others (:meth:`Decoder.first`)."""

    table: TableName
    key: tuple[str, ...]
    after: tuple[str, ...]
    source: tuple[str | None, ...]


class Decoded(NamedTuple):
    """One write's upserts of one table: ``rows`` holds the fitted columns (key columns
    included) in the per-record path's order, and ``_seq``, the record's place in the
    write; ``new`` the kinds of columns the table does not have yet."""

    table: TableName
    key: tuple[str, ...]
    rows: pa.Table
    new: dict[str, Kind]


def _pointer(*parts: str) -> str:
    """A JSON pointer (RFC 6901) as a SQL string literal."""
    path = "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)
    return "'" + path.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Decoder:
    """An in-memory DuckDB connection for a sink's writes. Not thread-safe (the sink's thread)."""

    def __init__(self) -> None:
        self._db: duckdb.DuckDBPyConnection | None = None
        # (after columns, key columns) -> the objects' frames (see _decode)
        self._frames: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[int, int]] = {}
        self._views: dict[str, str] = {}  # decoding query -> the temporary view running it
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._db is not None:
            self._db.close()
            self._db = None
            self._views.clear()

    def _view(self, db: duckdb.DuckDBPyConnection, query: str) -> str:
        """The name of a temporary view of ``query``, made at its first use. A write's query
        is the same for every write of a table (its columns and source fields), and DuckDB's
        Python API parses and binds a query text given to ``sql`` twice before running it:
        selecting from a view skips that (~5 ms a write, 1 us a record of 5,000, issue 6)."""
        name = self._views.get(query)
        if name is None:
            if len(self._views) >= _MAX_VIEWS:
                for old in self._views.values():
                    db.execute(f"DROP VIEW IF EXISTS {old}")
                self._views.clear()
            name = f"_changehub_decode_{len(self._views)}"
            db.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {query}")
            self._views[query] = name
        return name

    def decode(
        self, records: Sequence[LogRecord], template: str, shapes: dict[TableName, TableShape]
    ) -> Decoded | None:
        """``records`` (none a tombstone) as one table's fitted rows, or None: see the module
        doc. ``shapes`` is the sink's known tables; they are not changed here."""
        if not records or len({r.topic for r in records}) != 1:
            return None
        try:
            keys = pa.array([r.key for r in records], pa.binary()).cast(pa.string())
            values = pa.array([r.value for r in records], pa.binary()).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None  # not UTF-8 (or a missing key): the per-record path names it
        if keys.null_count or values.null_count:
            return None
        # The lenient-text search (~1 us a record, RE2 over every byte) runs on a worker
        # thread beside DuckDB's decoding (both release the interpreter lock); a match throws
        # the decoded rows away.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="sql-columnar")
        lenient = self._pool.submit(_any_lenient, keys, values)
        if self._db is None:
            self._db = duckdb.connect()
        db = self._db
        seq = pa.array(range(len(records)), pa.int64())
        db.register(_VIEW, pa.table({"_seq": seq, "k": keys, "v": values}))
        try:
            decoded = self._decode(db, records[0], template, shapes)
        except duckdb.Error:
            decoded = None  # e.g. a value that is not JSON: the per-record path says so
        finally:
            db.unregister(_VIEW)
            found = lenient.result()
        return None if found else decoded

    def first(self, record: LogRecord, template: str) -> First | None:
        """What the first record of a write sets for the others: its table, key and after
        columns; None when it is no upsert event of a table (the per-record path says why)."""
        try:
            value, key_doc = orjson.loads(record.value or b""), orjson.loads(record.key or b"")
        except orjson.JSONDecodeError:
            return None
        if not isinstance(value, dict) or not isinstance(key_doc, dict) or unwrap(
                value) is not value or unwrap(key_doc) is not key_doc:
            return None  # Kafka Connect's schema-wrapped form: the other records must match
            # the first one's key columns and have an after image, which a wrapped record
            # does not (its key columns would be schema and payload, an object: not a kind
            # taken here)
        after_doc, source_doc = value.get("after"), value.get("source")
        if (value.get("op") not in ("c", "u", "r") or not isinstance(after_doc, dict)
                or not after_doc or not key_doc or None in key_doc.values()):
            return None
        source = tuple(source_doc.get(f) if isinstance(source_doc, dict) else None
                       for f in _SOURCE_FIELDS)
        if not all(s is None or isinstance(s, str) for s in source):
            return None
        table = render(template, record.topic, dict(zip(_SOURCE_FIELDS, source, strict=True)))
        if table is None:
            return None
        return First(table, tuple(key_doc), tuple(after_doc), source)

    def _decode(
        self, db: duckdb.DuckDBPyConnection, first: LogRecord, template: str,
        shapes: dict[TableName, TableShape],
    ) -> Decoded | None:
        head = self.first(first, template)
        if head is None:
            return None
        table, after, key, source = head.table, list(head.after), list(head.key), head.source
        shape = shapes.get(table)
        if shape is not None and shape.key != tuple(key):
            return None  # the per-record path refuses these records, naming the key
        known: dict[str, Kind] = dict(shape.columns) if shape is not None else {}
        columns = list(after) + [k for k in key if k not in after]
        if "_seq" in columns or "_ok" in columns:
            return None  # the names of the query's own columns
        # One parse of each value (and key): json_extract with a list of paths gives every
        # field's minified JSON text (SQL NULL when absent). The checks and casts look at
        # those small texts: a string starts with '"', a number with a digit or '-' and is
        # an integer unless it has '.', 'e' or 'E' (as json_type's BIGINT/UBIGINT/DOUBLE).
        vpaths = ["'/op'", "'/after'",
                  *(_pointer("source", f) for f in _SOURCE_FIELDS),
                  *(_pointer("after", c) for c in after)]
        kpaths = ["''", *(_pointer(c) for c in key)]
        text = {c: f"e{7 + after.index(c)}" for c in after}
        text.update({c: f"ke{2 + key.index(c)}" for c in key})  # {**after, **key}
        unknown = [c for c in columns if c not in known]
        new: dict[str, Kind] = {}
        # each extracted text as a column of its own, so that the checks and casts below,
        # which name most of them several times, take the list element once
        inner = ("SELECT _seq, " + ", ".join(
            [f"e[{i}] AS e{i}" for i in range(1, len(vpaths) + 1)]
            + [f"ke[{i}] AS ke{i}" for i in range(1, len(kpaths) + 1)])
            + f" FROM (SELECT _seq, json_extract(v, [{', '.join(vpaths)}]) AS e, "
            f"json_extract(k, [{', '.join(kpaths)}]) AS ke FROM {_VIEW})")
        if unknown:
            # A new column's kind: its first non-null value's (in the write's order).
            row = db.execute(
                "SELECT " + ", ".join(
                    f"arg_min({_json_type(text[c])}, _seq) FILTER "
                    f"(WHERE {text[c]} <> 'null')" for c in unknown)
                + f" FROM ({inner})"
            ).fetchall()[0]
            for column, json_type in zip(unknown, row, strict=True):
                if json_type is None:
                    if column in key:
                        return None
                    continue  # null throughout: not planned, as per record
                kind = _NEW_KIND.get(json_type)
                if kind is None:
                    return None
                new[column] = kind
            columns = [c for c in columns if c in known or c in new]
        kinds = {c: known.get(c) or new[c] for c in columns}
        if any(k not in _TYPES for k in kinds.values()) or any(
                kinds[k] == "float" for k in key):
            return None
        # No record's after image (or key) has a column besides these: its minified text is
        # as long as theirs plus their names, colons, commas and braces, the same "frame"
        # as the first record's, which DuckDB measures here and whose columns it lists (a
        # column more, or one named twice, makes the frame longer; one missing is an absent
        # path, SQL NULL).
        frames = self._frames.get((tuple(after), tuple(key)))
        if frames is None:
            after_len = " + ".join(f"strlen(e[{7 + i}])" for i in range(len(after)))
            key_len = " + ".join(f"strlen(ke[{2 + i}])" for i in range(len(key)))
            measured = db.execute(
                f"SELECT strlen(e[2]) - ({after_len}), json_keys(e[2]), "
                f"strlen(ke[1]) - ({key_len}), json_keys(ke[1]) FROM (SELECT "
                f"json_extract(?::VARCHAR, [{', '.join(vpaths)}]) AS e, "
                f"json_extract(?::VARCHAR, [{', '.join(kpaths)}]) AS ke)",
                [(first.value or b"").decode(), (first.key or b"").decode()],
            ).fetchall()[0]
            frame, first_after, key_frame, first_key = measured
            if first_after != after or first_key != key or frame is None or key_frame is None:
                return None
            # The frame is a function of the column names alone (DuckDB writes the objects
            # minified), so later writes with these columns reuse it: the length check below
            # still holds every record, the first included, to it.
            frames = self._frames[(tuple(after), tuple(key))] = (int(frame), int(key_frame))
        frame, key_frame = frames
        # every record renders to the first one's table: the same source fields (strings
        # or null; absent counts as null, as per record)
        source_checks = [f"coalesce(e{3 + n}, 'null') = {_literal(orjson.dumps(s).decode())}"
                         for n, s in enumerate(source)]
        checks = [
            """e1 IN ('"c"', '"u"', '"r"')""",
            "left(e2, 1) = '{'",
            # the key has no column besides the first record's (the after image's check)
            "strlen(ke1) = " + " + ".join([str(int(key_frame))]
                                          + [f"strlen(ke{2 + i})" for i in range(len(key))]),
            "strlen(e2) = " + " + ".join([str(int(frame))] + [f"strlen(e{7 + i})"
                                                            for i in range(len(after))]),
            *source_checks,
        ]
        selects = []
        for c in columns:
            kind, t = kinds[c], text[c]
            nullable = c not in key
            null_ok = f"{t} = 'null' OR " if nullable else ""
            if kind == "integer":
                # the cast takes 1.5 and 1e3 too: an integer's text comes back unchanged
                checks.append(f"{null_ok}TRY_CAST({t} AS BIGINT)::VARCHAR = {t}")
                cast = f"TRY_CAST({t} AS BIGINT)"
            elif kind == "float":
                # a string, true/false, an object or array do not cast (quotes, letters)
                checks.append(f"{null_ok}isfinite(TRY_CAST({t} AS DOUBLE))")
                cast = f"TRY_CAST({t} AS DOUBLE)"
            elif kind == "boolean":
                checks.append(f"{null_ok}{t} IN ('true', 'false')")
                cast = f"CASE {t} WHEN 'true' THEN true WHEN 'false' THEN false END"
            else:
                checks.append(f"{null_ok}left({t}, 1) = '\"'")
                # a string without escapes is its text between the quotes
                cast = (f"CASE WHEN {t} = 'null' THEN NULL WHEN contains({t}, '\\') "
                        f"THEN {t} ->> '$' ELSE {t}[2:-2] END")
            selects.append(f"{cast} AS {_quote(c)}")
        query = (
            f"SELECT coalesce({' AND '.join(f'({c})' for c in checks)}, false) AS _ok, _seq, "
            + ", ".join(selects) + f" FROM ({inner})"
        )
        decoded = db.sql(f"SELECT * FROM {self._view(db, query)}").to_arrow_table()
        if not pc.all(decoded["_ok"]).as_py():
            return None
        rows = decoded.drop_columns(["_ok"])  # in any order: _seq says which came last
        return Decoded(table, tuple(key), rows, new)


def _any_lenient(keys: pa.Array, values: pa.Array) -> bool:
    """Whether a key or value may hold text DuckDB parses and orjson refuses (_LENIENT)."""
    return bool(pc.any(pc.match_substring_regex(values, _LENIENT)).as_py()
                or pc.any(pc.match_substring_regex(keys, _LENIENT)).as_py())


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_type(text: str) -> str:
    """json_type's name for the minified JSON ``text`` of a value (not null)."""
    return (f"CASE left({text}, 1) WHEN '\"' THEN 'VARCHAR' WHEN 't' THEN 'BOOLEAN' "
            f"WHEN 'f' THEN 'BOOLEAN' WHEN '{{' THEN 'OBJECT' WHEN '[' THEN 'ARRAY' "
            f"ELSE (CASE WHEN regexp_matches({text}, '[.eE]') THEN 'DOUBLE' "
            f"WHEN TRY_CAST({text} AS BIGINT) IS NULL THEN 'UBIGINT' ELSE 'BIGINT' END) END")


def collapse(rows: pa.Table, key: Sequence[str]) -> pa.Table:
    """The last row (highest ``_seq``) per key, without ``_seq``."""
    last = rows.group_by(list(key), use_threads=False).aggregate([("_seq", "max")])
    if last.num_rows == rows.num_rows:
        return rows.drop_columns(["_seq"])
    keep = pc.is_in(rows["_seq"], value_set=last["_seq_max"])
    return rows.filter(keep).drop_columns(["_seq"])
