"""The schema history: table definitions as of the stream's position, for servers whose
binlog carries no column names (``binlog_row_metadata`` MINIMAL, or a server too old for it:
MariaDB < 10.5, MySQL < 8.0.1).

As Debezium's schema history: the definitions of the captured tables start from the catalog
(when the source first starts, at the position it starts from), and every DDL statement the
stream passes is applied to them in binlog order (:mod:`ddl`), so each row event is decoded
with the columns it was written with — not the catalog's current ones, which may be several
``ALTER TABLE`` ahead of a reader that lags or restarts. The history is part of the
checkpoint (``schema_history``), so it is stored atomically with the records it decoded and
a restart resumes with the definitions of its position.

A statement :mod:`ddl` cannot follow about a captured table, or a captured table the history
does not know, is read from the catalog as it is now, with a warning: right unless more DDL
for that table follows in the part of the binlog not read yet.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from connectors.source.mysql.ddl import DdlError, Tables, apply_ddl
from connectors.source.mysql.schema import Catalog, ColumnHint, TableSchema

__all__ = ["SchemaHistory"]

log = logging.getLogger("changehub.source.mysql")


class SchemaHistory:
    """Definitions of the captured tables at the stream's position. Not thread-safe."""

    def __init__(
        self,
        tables: Tables,
        *,
        catalog: Catalog,
        captures: Callable[[str, str], bool],
        topic: Callable[[str, str], str],
    ) -> None:
        self._tables = tables
        self._catalog = catalog
        self._captures = captures
        self._topic = topic
        self._dict: dict[str, Any] | None = None

    @classmethod
    def from_dict(
        cls,
        d: Mapping[str, Any],
        *,
        catalog: Catalog,
        captures: Callable[[str, str], bool],
        topic: Callable[[str, str], str],
    ) -> SchemaHistory:
        tables: Tables = {}
        for name, t in d.items():
            db, table = name.split(".", 1)
            columns = tuple(
                ColumnHint(str(c[0]), str(c[1]), None if c[2] is None else int(c[2]), tuple(c[3]))
                for c in t["c"]
            )
            tables[(db, table)] = TableSchema(
                db, table, topic(db, table), columns, tuple(str(k) for k in t["k"])
            )
        return cls(tables, catalog=catalog, captures=captures, topic=topic)

    def to_dict(self) -> dict[str, Any]:
        """As JSON, for the checkpoint (built again only after a change)."""
        if self._dict is None:
            self._dict = {
                f"{db}.{table}": {
                    "c": [[c.name, c.kind, c.fixed_length, list(c.members)] for c in s.columns],
                    "k": list(s.key),
                }
                for (db, table), s in sorted(self._tables.items())
            }
        return self._dict

    def table(self, db: str, table: str) -> TableSchema | None:
        """The table as its next row event was written; None if it does not exist."""
        schema = self._tables.get((db, table))
        if schema is None:
            schema = self._from_catalog(db, table, "a table the schema history does not know")
        return schema

    def apply(self, sql: str, default_db: str | None) -> None:
        """A DDL statement passed in the binlog."""
        tables = dict(self._tables)
        try:
            changed = apply_ddl(sql, default_db, tables, self._topic)
        except DdlError as exc:
            self._catalog.forget(default_db)
            for db, table in list(self._tables):
                if re.search(rf"\b{re.escape(table)}\b", sql):
                    self._from_catalog(db, table, f"a statement it cannot follow ({exc}): {sql!r}")
            return
        if not changed:
            return
        self._tables = {k: v for k, v in tables.items() if self._captures(*k)}
        self._dict = None

    def _from_catalog(self, db: str, table: str, why: str) -> TableSchema | None:
        if not self._captures(db, table):
            return None
        self._catalog.forget(db)
        schema = self._catalog.table(db, table)
        log.warning(
            "schema history: %s.%s read from the catalog as it is now, after %s; right "
            "unless more DDL for it follows in the binlog (binlog_row_metadata=FULL avoids "
            "this)", db, table, why,
        )  # fmt: skip
        if schema is None:
            self._tables.pop((db, table), None)
        else:
            self._tables[(db, table)] = schema
        self._dict = None
        return schema

    @classmethod
    def bootstrap(
        cls,
        tables: list[TableSchema],
        *,
        catalog: Catalog,
        captures: Callable[[str, str], bool],
        topic: Callable[[str, str], str],
    ) -> SchemaHistory:
        """The history's start: the captured tables as the catalog has them now."""
        return cls(
            {(t.db, t.table): t for t in tables}, catalog=catalog, captures=captures, topic=topic
        )
