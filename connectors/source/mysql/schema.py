"""Table schemas: which columns an event was written with, and how to map their values.

Two sources of truth, used for what each knows best:

* the **binlog** itself: with ``binlog_row_metadata=FULL`` every TableMap event carries the
  column names, types, signedness, ENUM/SET members, character sets and the primary key of
  the table *as it was when the row was written*. Streaming decodes each row with the
  TableMap that precedes it, so events written before an ``ALTER TABLE`` keep their old
  columns and later ones get the new columns (upstream issue #600 does not apply: names never
  come from the current catalog). Without FULL metadata the names are missing; the source
  then keeps a schema history of the DDL it streams past instead (see :mod:`history`).
* the **catalog** (``information_schema``): what the binlog cannot say — that a MariaDB
  LONGTEXT is JSON (a ``json_valid`` check constraint), BINARY(n)'s length (the binlog drops
  trailing zero bytes) — and everything a snapshot needs. These hints are cached per table
  and dropped whenever a DDL statement for the table's database passes in the binlog
  (:meth:`Catalog.forget`), so they follow ALTER TABLE.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pymysql
from pymysqlreplication.constants import NONE_SOURCE

from connectors.envelope import topic_name
from connectors.source.mysql.binlog import connection_error
from connectors.source.mysql.decoder import RowDecoder, row_decoder
from connectors.source.mysql.server import Connection
from connectors.source.mysql.types import (
    Converter,
    binlog_converter,
    converter,
    kind_of_binlog_column,
    kind_of_catalog_column,
)
from hub.errors import SchemaError

__all__ = ["Catalog", "ColumnHint", "RowShape", "TableSchema", "is_ddl", "shape_of"]

EMPTY_SET = NONE_SOURCE.EMPTY_SET  # mysql-replication's reason for a None that was ''
_JSON_CHECK = re.compile(r"json_valid\(`([^`]+)`\)", re.IGNORECASE)
_SET_MEMBERS = re.compile(r"'((?:[^']|'')*)'")
_DDL = re.compile(r"^\s*(?:/\*.*?\*/\s*)*(ALTER|CREATE|DROP|RENAME|TRUNCATE)\b", re.I | re.S)


def is_ddl(query: str) -> bool:
    return _DDL.match(query) is not None


@dataclass(frozen=True)
class ColumnHint:
    """One column as the catalog describes it now."""

    name: str
    kind: str
    fixed_length: int | None = None  # BINARY(n)
    members: tuple[str, ...] = ()  # SET and ENUM members in definition order

    def converter(self) -> Converter:
        return converter(self.kind, fixed_length=self.fixed_length, members=self.members)


@dataclass(frozen=True)
class TableSchema:
    """A captured table as the catalog describes it: for snapshots and hints."""

    db: str
    table: str
    topic: str
    columns: tuple[ColumnHint, ...]
    key: tuple[str, ...]  # primary key columns, empty if the table has none

    def hint(self, name: str) -> ColumnHint | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None


class Catalog:
    """Reads table definitions from ``information_schema`` through one connection.

    Not thread-safe: the reader thread owns it.
    """

    def __init__(
        self, conn: Connection, source_name: str, reconnect: Callable[[], Connection] | None = None
    ) -> None:
        self._conn = conn
        self._reconnect = reconnect
        self._source = source_name
        self._cache: dict[tuple[str, str], TableSchema | None] = {}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()

    def table(self, db: str, table: str) -> TableSchema | None:
        """The table's schema, or None if it does not exist (any more)."""
        key = (db, table)
        if key not in self._cache:
            self._cache[key] = self._load(db, table)
        return self._cache[key]

    def forget(self, db: str | None) -> None:
        """Drop cached definitions (of one database, or all): a DDL statement passed."""
        if db is None:
            self._cache.clear()
            return
        for key in [k for k in self._cache if k[0] == db]:
            del self._cache[key]

    def tables_of(self, db: str) -> list[str]:
        rows = self._query(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (db,),
        )
        return [str(r[0]) for r in rows]

    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._run(sql, args)
        except pymysql.err.OperationalError as exc:
            if self._reconnect is None:
                raise connection_error(exc, "reading table definitions") from None
        try:  # the connection broke (a server restart, say): reconnect once
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = self._reconnect()
            return self._run(sql, args)
        except pymysql.err.MySQLError as exc:
            raise connection_error(exc, "reading table definitions") from None

    def _run(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def _load(self, db: str, table: str) -> TableSchema | None:
        rows = self._query(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_OCTET_LENGTH "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
            "ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        if not rows:
            return None
        json_columns = set()
        try:
            checks = self._query(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
                (db, table),
            )
        except pymysql.err.MySQLError:
            checks = []  # MySQL before 8.0.16 has no CHECK_CONSTRAINTS (and a real JSON type)
        for (clause,) in checks:
            json_columns.update(_JSON_CHECK.findall(str(clause)))
        columns = []
        for raw_name, raw_type, raw_column_type, octets in rows:
            name, data_type, column_type = str(raw_name), str(raw_type), str(raw_column_type)
            kind = "json" if name in json_columns else kind_of_catalog_column(data_type)
            fixed = int(octets) if data_type.lower() == "binary" and octets else None
            members: tuple[str, ...] = ()
            if kind in ("set", "enum"):  # enum members: for a schema history (see history.py)
                members = tuple(m.replace("''", "'") for m in _SET_MEMBERS.findall(column_type))
            columns.append(ColumnHint(name, kind, fixed, members))
        key = self._query(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (db, table),
        )
        return TableSchema(
            db=db,
            table=table,
            topic=topic_name(self._source, db, table),
            columns=tuple(columns),
            key=tuple(str(r[0]) for r in key),
        )


@dataclass
class RowShape:
    """How to turn one TableMap's rows into envelope rows: names, converters, key."""

    db: str
    table: str
    topic: str
    names: tuple[str, ...]
    converters: tuple[Converter, ...]
    set_columns: frozenset[str]  # an empty SET comes from the binlog decoder as None
    key: tuple[str, ...]
    source_columns: Any = field(default=None, repr=False)  # the TableMap's column list
    decoder: RowDecoder | None = field(default=None, repr=False)  # the fast path, if any

    def convert(self, values: dict[str, Any], none_sources: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, conv in zip(self.names, self.converters, strict=True):
            v = values.get(name)
            if v is None:
                empty_set = name in self.set_columns and none_sources.get(name) == EMPTY_SET
                out[name] = [] if empty_set else None
            else:
                out[name] = conv(v)
        if len(out) != len(values):
            out.update((k, None) for k in values if k not in out)
        return out


def shape_of(
    db: str,
    table: str,
    topic: str,
    columns: Sequence[Any],
    primary_key: Any,
    hints: TableSchema | None,
    *,
    fast: bool = True,
) -> RowShape:
    """The shape of rows under one TableMap event (``columns``: mysql-replication Columns)."""
    names: list[str] = []
    kinds: list[str] = []
    converters: list[Converter] = []
    sets: set[str] = set()
    for i, col in enumerate(columns):
        name = col.name
        if not name:
            raise SchemaError(
                f"the binlog has no name for column {i + 1} of {db}.{table}: the server does not "
                "write column names. Set binlog_row_metadata=FULL (MariaDB >= 10.5, "
                "MySQL >= 8.0.1): SET GLOBAL binlog_row_metadata = FULL, and in my.cnf"
            )
        kind = kind_of_binlog_column(col.type, col.character_set_name)
        hint = hints.hint(name) if hints is not None else None
        fixed = None
        if hint is not None:
            if kind == "text" and hint.kind == "json":
                kind = "json"
            elif kind == "binary" and hint.fixed_length is not None:
                fixed = hint.fixed_length
        members = tuple(getattr(col, "set_values", None) or ())
        if kind == "set":
            sets.add(name)
        names.append(name)
        kinds.append(kind)
        converters.append(binlog_converter(kind, fixed_length=fixed, members=members))
    if isinstance(primary_key, str):
        key: tuple[str, ...] = (primary_key,) if primary_key else ()
    else:
        key = tuple(primary_key or ())
    if not key and hints is not None:
        key = tuple(k for k in hints.key if k in names)
    decoder = row_decoder(columns, names, kinds, converters) if fast else None
    return RowShape(
        db, table, topic, tuple(names), tuple(converters), frozenset(sets), key, columns, decoder
    )
