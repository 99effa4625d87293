"""DDL statements applied to an in-memory schema, as Debezium's schema history does.

Without ``binlog_row_metadata=FULL`` a TableMap event has column types but no names, and
the catalog only knows the table as it is *now*; a reader behind an ``ALTER TABLE`` would
decode older rows with newer columns. So the DDL of the binlog's QUERY events is applied,
in binlog order, to the schema the stream keeps (:mod:`history`). This module knows the
statements that change what a row event looks like:

* ``CREATE TABLE`` (column definitions, inline and table ``PRIMARY KEY``; ``LIKE``),
* ``ALTER TABLE``: ``ADD [COLUMN]`` (one or a parenthesised list, ``FIRST``/``AFTER``),
  ``DROP [COLUMN]``, ``MODIFY``, ``CHANGE``, ``RENAME COLUMN``, ``RENAME [TO|AS]``,
  ``ADD PRIMARY KEY``, ``DROP PRIMARY KEY`` (``IF [NOT] EXISTS`` included); index, key,
  constraint, default and table-option clauses change no row and are passed over,
* ``DROP TABLE``, ``RENAME TABLE``, ``DROP DATABASE``/``SCHEMA``.

Everything else (``CREATE INDEX``, ``TRUNCATE``, grants …) changes no row image.
:func:`apply_ddl` raises :class:`DdlError` for a statement about a table that it cannot
follow (``CREATE TABLE … SELECT``, partition clauses it does not know); the caller then
falls back to the catalog and says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import pairwise

from connectors.source.mysql.schema import ColumnHint, TableSchema
from connectors.source.mysql.types import kind_of_catalog_column

__all__ = ["DdlError", "Tables", "apply_ddl"]

Tables = dict[tuple[str, str], TableSchema]

_TOKEN = re.compile(
    r"""\s+|/\*.*?\*/|(?:--\s|\#)[^\n]*
    |(?P<q>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    |(?P<b>`(?:[^`]|``)*`)
    |(?P<w>[A-Za-z0-9_$@]+)
    |(?P<p>.)""",
    re.S | re.X,
)
# Words that start a clause of ALTER TABLE or CREATE TABLE that changes no column.
_NOT_COLUMNS = {
    "INDEX", "KEY", "UNIQUE", "FULLTEXT", "SPATIAL", "CONSTRAINT", "FOREIGN", "CHECK",
    "PERIOD", "SYSTEM",
}  # fmt: skip
_TABLE_OPTIONS = {
    "ENGINE", "AUTO_INCREMENT", "DEFAULT", "CHARACTER", "CHARSET", "COLLATE", "COMMENT",
    "ROW_FORMAT", "LOCK", "ALGORITHM", "FORCE", "CONVERT", "ORDER", "ENABLE", "DISABLE",
    "DISCARD", "IMPORT", "KEY_BLOCK_SIZE", "STATS_PERSISTENT", "STATS_AUTO_RECALC",
    "STATS_SAMPLE_PAGES", "PAGE_CHECKSUM", "TRANSACTIONAL", "ENCRYPTED", "ENCRYPTION_KEY_ID",
    "CHECKSUM", "PACK_KEYS", "DELAY_KEY_WRITE", "MAX_ROWS", "MIN_ROWS", "AVG_ROW_LENGTH",
    "PAGE_COMPRESSED", "PAGE_COMPRESSION_LEVEL", "WITH", "WITHOUT", "NOWAIT", "WAIT",
    "INSERT_METHOD", "UNION", "DATA", "TABLESPACE", "ANALYZE", "OPTIMIZE", "REBUILD",
    "REPAIR", "COALESCE", "TRUNCATE", "EXCHANGE", "REORGANIZE", "REMOVE", "PARTITION",
    "PARTITIONS", "SECONDARY_ENGINE", "IETF_QUOTES", "SEQUENCE", "VALIDATION",
}  # fmt: skip


class DdlError(Exception):
    """A statement about a table that cannot be followed here."""


@dataclass(frozen=True)
class _Tok:
    text: str
    kind: str  # "w" word, "b" backquoted name, "q" string, "p" punctuation

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "w" else ""

    @property
    def name(self) -> str:
        """As an identifier (backquotes removed)."""
        if self.kind == "b":
            return self.text[1:-1].replace("``", "`")
        if self.kind == "q":
            return _unquote(self.text)
        return self.text


def _unquote(text: str) -> str:
    q = text[0]
    body = text[1:-1].replace(q + q, q)
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(m[1], m[1]), body)


def _tokens(sql: str) -> list[_Tok]:
    out = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        if kind is not None:
            out.append(_Tok(m.group(kind), kind))
    return out


class _Cursor:
    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self, ahead: int = 0) -> _Tok | None:
        j = self.i + ahead
        return self.toks[j] if j < len(self.toks) else None

    def word(self, *words: str) -> bool:
        """Consume the words if they come next."""
        for k, w in enumerate(words):
            t = self.peek(k)
            if t is None or t.upper != w:
                return False
        self.i += len(words)
        return True

    def next_is(self, *words: str, ahead: int = 0) -> bool:
        t = self.peek(ahead)
        return t is not None and (t.upper in words or t.text in words)

    def take(self) -> _Tok:
        t = self.peek()
        if t is None:
            raise DdlError("the statement ends too early")
        self.i += 1
        return t

    def qualified(self, default_db: str | None) -> tuple[str, str]:
        first = self.take().name
        t = self.peek()
        if t is not None and t.text == ".":
            self.i += 1
            return first, self.take().name
        if default_db is None:
            raise DdlError(f"table {first} without a database and no default database")
        return default_db, first

    def group(self) -> list[_Tok]:
        """The tokens inside the parentheses that come next (consumed with them)."""
        if self.take().text != "(":
            raise DdlError("expected (")
        depth, start = 1, self.i
        while depth:
            t = self.take()
            if t.kind == "p":
                depth += {"(": 1, ")": -1}.get(t.text, 0)
        return self.toks[start : self.i - 1]

    def done(self) -> bool:
        return self.i >= len(self.toks)


def _split(toks: list[_Tok]) -> Iterator[list[_Tok]]:
    """Top-level comma-separated parts."""
    depth, part = 0, list[_Tok]()
    for t in toks:
        if t.kind == "p" and t.text in "()":
            depth += 1 if t.text == "(" else -1
        if depth == 0 and t.kind == "p" and t.text == ",":
            yield part
            part = []
        else:
            part.append(t)
    if part:
        yield part


def _column(toks: list[_Tok]) -> tuple[ColumnHint, bool]:
    """A column definition (name, type, attributes): its hint and whether it is the
    primary key."""
    c = _Cursor(toks)
    name = c.take().name
    type_name = c.take().upper.lower()
    args: list[_Tok] = []
    t = c.peek()
    if t is not None and t.text == "(":
        args = c.group()
    rest = [t.upper for t in c.toks[c.i :]]
    members = tuple(_unquote(a.text) for a in args if a.kind == "q")
    kind = kind_of_catalog_column(type_name)
    if type_name == "json":
        kind = "json"
    elif type_name in ("bool", "boolean", "serial"):
        kind = "int"
    elif type_name in ("dec", "fixed"):
        kind = "decimal"
    fixed = None
    if type_name == "binary":
        fixed = int(args[0].text) if args else 1
    primary = any(a == "PRIMARY" and b == "KEY" for a, b in pairwise(rest))
    return ColumnHint(name, kind, fixed, members if kind in ("set", "enum") else ()), primary


def _key_columns(toks: list[_Tok]) -> tuple[str, ...]:
    """``(a, b(10) DESC)`` -> (a, b)."""
    return tuple(part[0].name for part in _split(toks) if part)


def _place(columns: list[ColumnHint], col: ColumnHint, c: _Cursor) -> None:
    if c.word("FIRST"):
        columns.insert(0, col)
    elif c.word("AFTER"):
        after = c.take().name
        at = next((i for i, x in enumerate(columns) if x.name.lower() == after.lower()), None)
        if at is None:
            raise DdlError(f"AFTER {after}: no such column")
        columns.insert(at + 1, col)
    else:
        columns.append(col)


def _index(columns: list[ColumnHint], name: str) -> int | None:
    return next((i for i, x in enumerate(columns) if x.name.lower() == name.lower()), None)


def _create(c: _Cursor, db: str | None, tables: Tables, topic: Callable[[str, str], str]) -> None:
    c.word("IF", "NOT", "EXISTS")
    key = c.qualified(db)
    like = c.word("LIKE")
    if not like and c.next_is("(") and c.next_is("LIKE", ahead=1):
        c.i += 2  # CREATE TABLE t (LIKE u)
        like = True
    if like:
        other = c.qualified(db)
        if other not in tables:
            raise DdlError(f"CREATE TABLE … LIKE {other[0]}.{other[1]}: not in the history")
        tables[key] = replace(tables[other], db=key[0], table=key[1], topic=topic(*key))
        return
    t = c.peek()
    if t is None or t.text != "(":
        raise DdlError("CREATE TABLE without a column list")
    columns: list[ColumnHint] = []
    pk: tuple[str, ...] = ()
    for part in _split(c.group()):
        head = part[0].upper
        if head == "PRIMARY" or (head == "CONSTRAINT" and any(p.upper == "PRIMARY" for p in part)):
            j = next(i for i, p in enumerate(part) if p.text == "(")
            pk = _key_columns(_Cursor(part[j:]).group())
        elif head in _NOT_COLUMNS and part[0].kind == "w":
            continue
        else:
            col, primary = _column(part)
            columns.append(col)
            if primary:
                pk = (col.name,)
    while not c.done():
        if c.take().upper in ("SELECT", "AS", "IGNORE", "REPLACE"):
            raise DdlError("CREATE TABLE … SELECT: the columns come from a query")
    tables[key] = TableSchema(key[0], key[1], topic(*key), tuple(columns), pk)


def _alter(c: _Cursor, db: str | None, tables: Tables, topic: Callable[[str, str], str]) -> None:
    c.word("ONLINE")
    c.word("IGNORE")
    c.word("TABLE")
    c.word("IF", "EXISTS")
    key = c.qualified(db)
    if key not in tables:
        return  # a table not tracked (not captured): nothing to follow
    schema = tables[key]
    columns = list(schema.columns)
    pk = schema.key
    new_key = key
    for part in _split(c.toks[c.i :]):
        s = _Cursor(part)
        if s.word("ADD"):
            if s.word("PRIMARY", "KEY"):
                pk = _key_columns(s.group())
                continue
            head = s.peek()
            if head is not None and head.kind == "w" and head.upper in _NOT_COLUMNS:
                continue
            s.word("COLUMN")
            exists = s.word("IF", "NOT", "EXISTS")
            t = s.peek()
            if t is not None and t.text == "(":
                for sub in _split(s.group()):
                    col, primary = _column(sub)
                    columns.append(col)
                    pk = (col.name,) if primary else pk
                continue
            rest = part[s.i :]
            col, primary = _column(rest)
            if exists and _index(columns, col.name) is not None:
                continue
            tail = _Cursor(rest)
            tail.i = _definition_end(rest)
            _place(columns, col, tail)
            pk = (col.name,) if primary else pk
        elif s.word("DROP"):
            if s.word("PRIMARY", "KEY"):
                pk = ()
                continue
            head = s.peek()
            if head is not None and head.kind == "w" and head.upper in _NOT_COLUMNS | {
                "PARTITION", "DEFAULT"}:  # fmt: skip
                continue
            s.word("COLUMN")
            exists = s.word("IF", "EXISTS")
            name = s.take().name
            at = _index(columns, name)
            if at is None:
                if exists:
                    continue
                raise DdlError(f"DROP COLUMN {name}: no such column")
            columns.pop(at)
            pk = tuple(k for k in pk if k.lower() != name.lower())
        elif s.word("MODIFY") or s.word("CHANGE"):
            change = part[0].upper == "CHANGE"
            s.word("COLUMN")
            exists = s.word("IF", "EXISTS")
            old = s.take().name if change else None
            rest = part[s.i :]
            col, primary = _column(rest)
            at = _index(columns, old if old is not None else col.name)
            if at is None:
                if exists:
                    continue
                raise DdlError(f"{part[0].upper} {old or col.name}: no such column")
            replaced = columns.pop(at).name
            tail = _Cursor(rest)
            tail.i = _definition_end(rest)
            if tail.next_is("FIRST", "AFTER"):
                _place(columns, col, tail)
            else:
                columns.insert(at, col)
            pk = tuple(col.name if k.lower() == replaced.lower() else k for k in pk)
            pk = (col.name,) if primary else pk
        elif s.word("RENAME", "COLUMN"):
            old = s.take().name
            s.word("TO")
            new = s.take().name
            at = _index(columns, old)
            if at is None:
                raise DdlError(f"RENAME COLUMN {old}: no such column")
            columns[at] = replace(columns[at], name=new)
            pk = tuple(new if k.lower() == old.lower() else k for k in pk)
        elif s.word("RENAME"):
            if s.next_is("INDEX", "KEY"):
                continue
            _ = s.word("TO") or s.word("AS")
            new_key = s.qualified(key[0])
        elif s.word("ALTER"):
            continue  # [COLUMN] c SET/DROP DEFAULT, ALTER INDEX … VISIBLE: no row change
        else:
            head = s.peek()
            if head is None or head.upper in _TABLE_OPTIONS:
                continue
            raise DdlError(f"ALTER TABLE … {head.text}: a clause not followed here")
    del tables[key]
    tables[new_key] = TableSchema(new_key[0], new_key[1], topic(*new_key), tuple(columns), pk)


def _definition_end(toks: list[_Tok]) -> int:
    """Where a column definition's FIRST / AFTER placement starts (or its end)."""
    depth = 0
    for i, t in enumerate(toks):
        if t.kind == "p" and t.text in "()":
            depth += 1 if t.text == "(" else -1
        elif depth == 0 and i > 1 and t.upper in ("FIRST", "AFTER"):
            return i
    return len(toks)


def apply_ddl(
    sql: str, default_db: str | None, tables: Tables, topic: Callable[[str, str], str]
) -> bool:
    """Apply one statement to ``tables`` (in place); whether it was DDL that could change
    a table. Raises :class:`DdlError` when it names a table but cannot be followed."""
    c = _Cursor(_tokens(sql))
    if c.word("CREATE"):
        c.word("OR", "REPLACE")
        c.word("TEMPORARY")  # not binlogged in ROW format; harmless if it were
        if c.word("TABLE"):
            _create(c, default_db, tables, topic)
            return True
        return False
    if c.word("ALTER"):
        if c.next_is("TABLE", "ONLINE", "IGNORE"):
            _alter(c, default_db, tables, topic)
            return True
        return False
    if c.word("DROP"):
        c.word("TEMPORARY")
        if c.word("TABLE") or c.word("TABLES"):
            c.word("IF", "EXISTS")
            for part in _split(c.toks[c.i :]):
                p = _Cursor(part)
                tables.pop(p.qualified(default_db), None)
            return True
        if c.word("DATABASE") or c.word("SCHEMA"):
            c.word("IF", "EXISTS")
            gone = c.take().name
            for key in [k for k in tables if k[0] == gone]:
                del tables[key]
            return True
        return False
    if c.word("RENAME", "TABLE") or c.word("RENAME", "TABLES"):
        for part in _split(c.toks[c.i :]):
            p = _Cursor(part)
            old = p.qualified(default_db)
            p.word("TO")
            new = p.qualified(default_db)
            if old in tables:
                s = tables.pop(old)
                tables[new] = replace(s, db=new[0], table=new[1], topic=topic(*new))
        return True
    return False
