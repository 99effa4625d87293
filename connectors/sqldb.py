"""SQLAlchemy plumbing shared by the ``sql_poll`` source and the ``sql`` sink.

* :func:`engine_for` builds an engine from any SQLAlchemy URL and says clearly when the URL
  or its driver is wrong.
* :func:`translate` turns a SQLAlchemy error into changehub's error tree: a lost or refused
  connection (and anything else the DBAPI calls *operational*: locks, timeouts) is
  :class:`~hub.errors.RetriableError`; the rest is :class:`~hub.errors.FatalError`. Messages
  name the URL with its password masked.
* :func:`describe_table` reads a table's columns and primary key. It goes through
  SQLAlchemy's inspector, except on DuckDB: duckdb-engine's reflection breaks with
  SQLAlchemy >= 2.0.45 (it queries ``pg_catalog.pg_collation``, which DuckDB lacks;
  Mause/duckdb_engine#1379), so there the catalog is read from ``information_schema``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url

from hub.errors import ConnectorError, FatalError, RetriableError
from hub.secrets import mask

__all__ = [
    "SharedEngine",
    "TableDescription",
    "describe_table",
    "engine_for",
    "is_refused",
    "is_transient",
    "mask_url",
    "split_table_name",
    "translate",
    "validate_url",
]


def mask_url(url: str) -> str:
    """The URL as it may appear in messages: password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return mask(url)


def validate_url(url: str) -> str:
    """For config models: ``url`` must parse as a SQLAlchemy URL. Never echoes the URL."""
    try:
        make_url(url)
    except sa_exc.ArgumentError:
        raise ValueError(
            "not a SQLAlchemy database URL: expected dialect[+driver]://user:password@host/db, "
            "e.g. sqlite:///./legacy.db, duckdb:///./warehouse.duckdb, "
            "postgresql://app:secret@localhost/shop"
        ) from None
    return url


def engine_for(url: str) -> Engine:
    """An engine for ``url``. A dialect or driver that is not installed is a FatalError.

    DuckDB allows one process at a time to open a database file, so its connections are not
    pooled: the file is free for other programs (a user's query, a test) between calls.
    """
    parsed = make_url(url)
    pooling: dict[str, Any] = (
        {"poolclass": sa.pool.NullPool} if parsed.get_backend_name() == "duckdb" else {}
    )
    try:
        return sa.create_engine(parsed, pool_pre_ping=True, **pooling)
    except (sa_exc.NoSuchModuleError, ImportError) as exc:
        raise FatalError(
            f"cannot use {mask_url(url)}: the SQLAlchemy dialect or driver "
            f"{parsed.drivername!r} is not installed ({exc}); install it with pip, or name an "
            "installed driver in the URL (e.g. mysql+pymysql://, postgresql+psycopg://)"
        ) from None


class SharedEngine:
    """An engine that may be closed from another thread while a call is using it.

    Disposing an engine does not close connections that are checked out; one returned to a
    disposed pool is never closed (the driver then complains when it is garbage collected).
    So :meth:`close` disposes at once only when no :meth:`use` is running, and otherwise the
    last user disposes on its way out. Thread-safe.
    """

    def __init__(self, url: str, owner: str) -> None:
        self._engine = engine_for(url)
        self._owner = owner
        self._lock = threading.Lock()
        self._users = 0
        self._closed = False

    @property
    def url(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    @contextmanager
    def use(self) -> Iterator[Engine]:
        """The engine, for one call. FatalError once :meth:`close` was called."""
        with self._lock:
            if self._closed:
                raise FatalError(f"{self._owner} was stopped")
            self._users += 1
        try:
            yield self._engine
        finally:
            with self._lock:
                self._users -= 1
                last = self._closed and self._users == 0
            if last:
                self._engine.dispose()

    def close(self) -> None:
        """Dispose the engine now, or when the running call ends. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle = self._users == 0
        if idle:
            self._engine.dispose()


def translate(exc: sa_exc.SQLAlchemyError, *, doing: str, url: str) -> ConnectorError:
    """``exc`` as a changehub error whose message says what failed, where, and why."""
    reason = _reason(exc, url)
    where = mask_url(url)
    if is_transient(exc):
        return RetriableError(f"{doing} on {where} failed (will retry): {reason}")
    return FatalError(f"{doing} on {where} failed: {reason}")


def is_transient(exc: BaseException) -> bool:
    """A lost or refused connection, a lock, a timeout: worth trying again."""
    if isinstance(exc, sa_exc.DBAPIError):
        if is_refused(exc):
            return False
        return bool(exc.connection_invalidated) or isinstance(exc, sa_exc.OperationalError)
    return isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError)


# MySQL/MariaDB error codes of a CHECK constraint that failed (MySQL 3819, MariaDB 4025),
# which PyMySQL reports as OperationalError (it maps codes it does not know to that class)
_MYSQL_REFUSED = frozenset((3819, 4025))


def is_refused(exc: BaseException) -> bool:
    """The database refused a value (a constraint, a value out of its column's range): the
    data is at fault, not the connection or the statement, and a retry fails the same way."""
    if isinstance(exc, sa_exc.IntegrityError | sa_exc.DataError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        args: tuple[Any, ...] = tuple(getattr(exc.orig, "args", ()))
        return bool(args) and args[0] in _MYSQL_REFUSED
    return False


def _reason(exc: sa_exc.SQLAlchemyError, url: str) -> str:
    original = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    text = str(original).strip().splitlines()
    first = text[0] if text else type(original).__name__
    password = make_url(url).password
    if password:
        first = first.replace(str(password), "***")
    return mask(first)


def split_table_name(name: str) -> tuple[str | None, str]:
    """``"schema.table"`` -> ("schema", "table"); ``"table"`` -> (None, "table")."""
    schema, dot, table = name.rpartition(".")
    return (schema or None, table) if dot else (None, name)


@dataclass(frozen=True)
class TableDescription:
    """A table as the database has it: column types in table order, primary key columns."""

    columns: Mapping[str, sa.types.TypeEngine[Any]]
    primary_key: tuple[str, ...]


def describe_table(conn: Connection, schema: str | None, table: str) -> TableDescription | None:
    """The table's columns and primary key, or None when there is no such table."""
    if conn.dialect.name == "duckdb":
        return _describe_duckdb(conn, schema, table)
    inspector = sa.inspect(conn)
    if not inspector.has_table(table, schema=schema):
        return None
    columns = {c["name"]: c["type"] for c in inspector.get_columns(table, schema=schema)}
    pk = inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or []
    return TableDescription(columns, tuple(pk))


_DUCKDB_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "TINYINT": sa.SmallInteger(),
    "SMALLINT": sa.SmallInteger(),
    "INTEGER": sa.Integer(),
    "BIGINT": sa.BigInteger(),
    "HUGEINT": sa.Numeric(38, 0),
    "UTINYINT": sa.SmallInteger(),
    "USMALLINT": sa.Integer(),
    "UINTEGER": sa.BigInteger(),
    "UBIGINT": sa.Numeric(20, 0),
    "FLOAT": sa.Float(),
    "DOUBLE": sa.Double(),
    "BOOLEAN": sa.Boolean(),
    "VARCHAR": sa.String(),
    "BLOB": sa.LargeBinary(),
    "DATE": sa.Date(),
    "TIME": sa.Time(),
    "TIMESTAMP": sa.DateTime(),
    "TIMESTAMP WITH TIME ZONE": sa.DateTime(timezone=True),
    "UUID": sa.Uuid(),
    "JSON": sa.JSON(),
}


def _duckdb_type(name: str) -> sa.types.TypeEngine[Any]:
    base = name.split("(", 1)[0].strip().upper()
    if base == "DECIMAL":
        return sa.Numeric()
    if base.startswith("TIMESTAMP_") or base == "DATETIME":
        return sa.DateTime()
    if base == "TIMESTAMPTZ":
        return sa.DateTime(timezone=True)
    return _DUCKDB_TYPES.get(base, sa.types.NullType())


def _describe_duckdb(conn: Connection, schema: str | None, table: str) -> TableDescription | None:
    rows = conn.execute(
        sa.text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = :table AND table_schema = COALESCE(:schema, current_schema()) "
            "ORDER BY ordinal_position"
        ).bindparams(table=table, schema=schema)
    ).all()
    if not rows:
        return None
    pk_rows = conn.execute(
        sa.text(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE table_name = :table AND schema_name = COALESCE(:schema, current_schema()) "
            "AND constraint_type = 'PRIMARY KEY'"
        ).bindparams(table=table, schema=schema)
    ).all()
    pk = tuple(pk_rows[0][0]) if pk_rows else ()
    return TableDescription({name: _duckdb_type(dtype) for name, dtype in rows}, pk)
