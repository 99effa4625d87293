"""What a ``sql_poll`` source reads: the table (or custom query), checked against the config.

Checked when the source starts and again whenever a poll query fails, so that a table or
column dropped underneath a running source gives a :class:`~hub.errors.SchemaError` that
names the table, the column and the fix, not a driver's "no such column".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.source.sql_poll.config import SqlPollConfig
from connectors.source.sql_poll.watermark import Cursor
from connectors.sqldb import TableDescription, describe_table, mask_url
from hub.errors import SchemaError

__all__ = ["Relation", "resolve"]


@dataclass(frozen=True)
class Relation:
    """The polled rows as a typed selectable, with the event key and the cursor columns."""

    rows: sa.FromClause
    key_columns: tuple[str, ...]
    cursor: Cursor
    dialect: str

    def column(self, name: str) -> sa.ColumnElement[Any]:
        return self.rows.c[name]

    @property
    def timestamp_is_aware(self) -> bool:
        """Whether the timestamp column holds zone-aware values (naive ones are UTC)."""
        if self.cursor.timestamp is None:
            return False
        column_type = self.rows.c[self.cursor.timestamp].type
        return bool(getattr(column_type, "timezone", False))


def resolve(conn: Connection, config: SqlPollConfig) -> Relation:
    """The relation ``config`` polls, or a SchemaError saying what does not fit and the fix."""
    schema, table = config.schema_name, config.table_name
    described = describe_table(conn, schema, table)
    if config.query is None:
        if described is None:
            raise SchemaError(
                f"table {config.table!r} does not exist in {mask_url(config.url)}: create it, "
                "or fix `table` (qualify it as schema.table when it is not in the default "
                "schema)"
            )
        relation_name = f"table {config.table!r}"
        types = dict(described.columns)
        rows: sa.FromClause = sa.Table(
            table, sa.MetaData(), *(sa.Column(n, t) for n, t in types.items()), schema=schema
        )
    else:
        relation_name = f"the query of source {config.name!r}"
        types = _query_types(conn, config, described)
        rows = (
            sa.text(config.query)
            .columns(*(sa.column(n, t) for n, t in types.items()))
            .subquery("polled")
        )
    cursor = Cursor(relation_name, config.incrementing_column, config.timestamp_column)
    _check_cursor(config, cursor, types)
    keys = _key_columns(config, cursor, types, described)
    return Relation(rows, keys, cursor, conn.dialect.name)


def _query_types(
    conn: Connection, config: SqlPollConfig, described: TableDescription | None
) -> dict[str, sa.types.TypeEngine[Any]]:
    """The custom query's columns, typed like the table's columns of the same name.

    A column the table does not have gets the type its role implies (the cursor columns),
    or none, so that e.g. SQLite's text timestamps still come back as datetimes.
    """
    assert config.query is not None
    probe = sa.select(sa.text("*")).select_from(sa.text(f"({config.query}) AS probe")).where(
        sa.false()
    )
    names = list(conn.execute(probe).keys())
    known = dict(described.columns) if described else {}
    implied: dict[str, sa.types.TypeEngine[Any]] = {}
    if config.incrementing_column:
        implied[config.incrementing_column] = sa.BigInteger()
    if config.timestamp_column:
        implied[config.timestamp_column] = sa.DateTime()
    return {n: known.get(n) or implied.get(n) or sa.types.NullType() for n in names}


def _check_cursor(
    config: SqlPollConfig, cursor: Cursor, types: dict[str, sa.types.TypeEngine[Any]]
) -> None:
    for key, name, wanted, kind in (
        ("incrementing_column", cursor.incrementing, sa.Integer, "an integer"),
        ("timestamp_column", cursor.timestamp, sa.DateTime, "a TIMESTAMP/DATETIME"),
    ):
        if name is None:
            continue
        if name not in types:
            raise SchemaError(
                f"column {name!r} ({key}) is not in {cursor.relation} (columns: "
                f"{', '.join(types)}); it was dropped or renamed: set {key} to an existing "
                "column, or restore it"
            )
        column_type = types[name]
        # NullType: the database did not say (SQLite without a declared type, a query's
        # computed column); the values are checked as they are read instead.
        if not isinstance(column_type, (wanted, sa.types.NullType)):
            raise SchemaError(
                f"column {name!r} ({key}) of {cursor.relation} has type {column_type}, but mode "
                f"{config.mode!r} needs {kind} column: set {key} to such a column"
                + (", or use mode timestamp" if key == "incrementing_column" else "")
            )


def _key_columns(
    config: SqlPollConfig,
    cursor: Cursor,
    types: dict[str, sa.types.TypeEngine[Any]],
    described: TableDescription | None,
) -> tuple[str, ...]:
    if config.key_columns:
        keys = tuple(config.key_columns)
    elif described and described.primary_key and all(c in types for c in described.primary_key):
        keys = described.primary_key
    elif cursor.incrementing:
        keys = (cursor.incrementing,)
    else:
        raise SchemaError(
            f"{cursor.relation} has no primary key to use as the event key, and mode "
            f"{config.mode!r} has no incrementing column: set key_columns"
        )
    missing = [k for k in keys if k not in types]
    if missing:
        raise SchemaError(
            f"key column(s) {', '.join(map(repr, missing))} not in {cursor.relation} (columns: "
            f"{', '.join(types)}): fix key_columns"
        )
    return keys
