"""Writing rows by key, in the statement each database does best, a batch per statement.

=================  ====================================================================
database           upsert
=================  ====================================================================
SQLite, PostgreSQL ``INSERT … ON CONFLICT (key) DO UPDATE SET c = excluded.c``, executemany
DuckDB             ``MERGE INTO t USING batch`` where ``batch`` is the rows as an Arrow
                   table registered on the connection: DuckDB runs an executemany row by
                   row (~1 ms a row), and SQLAlchemy compiles a multi-row VALUES at ~50 us
                   a value, while a MERGE from Arrow takes ~3 us a row. Rows holding JSON
                   objects (no flat Arrow type) fall back to ``ON CONFLICT`` with many
                   ``VALUES`` rows
MySQL, MariaDB     ``INSERT … ON DUPLICATE KEY UPDATE c = VALUES(c)``, executemany
any other, and a   ``DELETE … WHERE key IN (…)`` then ``INSERT``, in the caller's transaction
table without a
primary key
=================  ====================================================================

Deletes are ``DELETE … WHERE (k1, k2) IN (…)`` in chunks. The caller collapses the rows of a
batch to one per key first: ``ON CONFLICT DO UPDATE`` may not touch a row twice in one
statement.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection

__all__ = ["delete_keys", "merge_arrow", "upsert_rows", "upsert_table"]

# Keys per DELETE … IN and rows per multi-row VALUES: well below every database's limit on
# bound parameters (SQLite: 32766) for tables of up to a few dozen columns.
_CHUNK = 500


def upsert_rows(
    conn: Connection,
    table: sa.Table,
    key: Sequence[str],
    rows: Sequence[dict[str, Any]],
    *,
    has_primary_key: bool = True,
    replace: bool = True,
) -> None:
    """Insert ``rows``, replacing any row with the same ``key`` (``replace=False``: keeping
    it, for rows that never change once written). All rows share their columns."""
    if not rows:
        return
    dialect = conn.dialect.name
    if not has_primary_key or dialect not in ("sqlite", "postgresql", "duckdb", "mysql", "mariadb"):
        delete_keys(conn, table, key, [{k: r[k] for k in key} for r in rows])
        conn.execute(table.insert(), list(rows))
        return
    columns = list(rows[0])
    updates = [c for c in columns if c not in key] if replace else []
    if dialect in ("mysql", "mariadb"):
        my = mysql.insert(table)
        # ON DUPLICATE KEY UPDATE needs at least one assignment; a no-op one on the key will do.
        assign = {c: my.inserted[c] for c in updates or key[:1]}
        conn.execute(my.on_duplicate_key_update(assign), list(rows))
        return
    if dialect == "duckdb":
        if _merge_from_arrow(conn, table, key, rows, updates):
            return
        for start in range(0, len(rows), _CHUNK):
            conn.execute(_on_conflict(postgresql.insert(table).values(rows[start:start + _CHUNK]),
                                      key, updates))
        return
    insert = sqlite.insert(table) if dialect == "sqlite" else postgresql.insert(table)
    conn.execute(_on_conflict(insert, key, updates), list(rows))


_BATCH_VIEW = "_changehub_batch"


def _merge_from_arrow(
    conn: Connection,
    table: sa.Table,
    key: Sequence[str],
    rows: Sequence[dict[str, Any]],
    updates: Sequence[str],
) -> bool:
    """DuckDB: ``MERGE`` ``rows`` from an Arrow table; False (nothing done) when a column's
    values have no flat Arrow type, e.g. JSON objects bound for a JSON column."""
    columns = list(rows[0])
    arrays = []
    for column in columns:
        try:
            array = pa.array([row[column] for row in rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return False
        arrays.append(array)
    return merge_arrow(conn, table, key, pa.table(arrays, names=columns), updates)


def upsert_table(
    conn: Connection,
    table: sa.Table,
    key: Sequence[str],
    rows: pa.Table,
    *,
    has_primary_key: bool = True,
) -> None:
    """:func:`upsert_rows` for rows already in an Arrow table (one per key): DuckDB merges
    the table as it is; other databases, or columns of nested types, get its rows."""
    updates = [c for c in rows.column_names if c not in key]
    if has_primary_key and conn.dialect.name == "duckdb" and merge_arrow(
        conn, table, key, rows, updates
    ):
        return
    upsert_rows(conn, table, key, rows.to_pylist(), has_primary_key=has_primary_key)


def merge_arrow(
    conn: Connection,
    table: sa.Table,
    key: Sequence[str],
    rows: pa.Table,
    updates: Sequence[str],
) -> bool:
    """DuckDB: ``MERGE`` ``rows`` (one per key) into ``table``, replacing the ``updates``
    columns of rows that exist; False (nothing done) when a column has a nested type."""
    if any(pa.types.is_nested(t) for t in rows.schema.types):
        return False
    columns = rows.column_names
    prep = conn.dialect.identifier_preparer
    names = [prep.quote(c) for c in columns]
    match = " AND ".join(f"_t.{prep.quote(k)} = _s.{prep.quote(k)}" for k in key)
    update = ", ".join(f"{prep.quote(c)} = _s.{prep.quote(c)}" for c in updates)
    merge = (
        f"MERGE INTO {prep.format_table(table)} AS _t USING {_BATCH_VIEW} AS _s ON ({match}) "
        + (f"WHEN MATCHED THEN UPDATE SET {update} " if updates else "")
        + f"WHEN NOT MATCHED THEN INSERT ({', '.join(names)}) "
        f"VALUES ({', '.join(f'_s.{n}' for n in names)})"
    )
    # The view lives on the DBAPI connection of this transaction, only for this statement.
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.register(_BATCH_VIEW, rows)
    try:
        conn.exec_driver_sql(merge)
    except BaseException:
        # An aborted transaction refuses the unregister too: keep the MERGE's own error
        # (the connection is closed on the way out anyway).
        with contextlib.suppress(Exception):
            raw.unregister(_BATCH_VIEW)
        raise
    raw.unregister(_BATCH_VIEW)
    return True


def _on_conflict(
    insert: sqlite.Insert | postgresql.Insert, key: Sequence[str], updates: Sequence[str]
) -> sa.Executable:
    if not updates:
        return insert.on_conflict_do_nothing(index_elements=list(key))
    return insert.on_conflict_do_update(
        index_elements=list(key), set_={c: insert.excluded[c] for c in updates}
    )


def delete_keys(
    conn: Connection, table: sa.Table, key: Sequence[str], keys: Sequence[dict[str, Any]]
) -> None:
    """Delete the rows whose ``key`` columns equal one of ``keys``."""
    if not keys:
        return
    if len(key) == 1:
        column = table.c[key[0]]
        values = [k[key[0]] for k in keys]
        for start in range(0, len(values), _CHUNK):
            conn.execute(table.delete().where(column.in_(values[start:start + _CHUNK])))
        return
    columns = sa.tuple_(*(table.c[k] for k in key))
    tuples = [tuple(k[c] for c in key) for k in keys]
    for start in range(0, len(tuples), _CHUNK):
        conn.execute(table.delete().where(columns.in_(tuples[start:start + _CHUNK])))
