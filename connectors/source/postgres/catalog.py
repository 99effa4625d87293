"""What the source reads from the system catalogs, over an ordinary SQL connection.

Tables (columns, primary key, replica identity), types for :class:`types.TypeMap`, and
server facts. One small function per question; no caching here (callers cache).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from connectors.source.postgres.lsn import Lsn
from connectors.source.postgres.types import SESSION_OPTIONS, PgType
from hub.errors import FatalError, RetriableError, SchemaError
from hub.secrets import mask

__all__ = [
    "TCP_DEFAULTS",
    "TableInfo",
    "catalog_error",
    "connect",
    "current_wal_lsn",
    "estimated_rows",
    "load_types",
    "quote_table",
    "session_conninfo",
    "setting",
    "slot_state",
    "snapshot_visibility",
    "table_info",
]


@dataclass(frozen=True)
class TableInfo:
    oid: int
    schema: str
    name: str
    columns: tuple[str, ...]  # published (non-generated) columns in attribute order
    type_oids: tuple[int, ...]
    type_names: tuple[str, ...]  # format_type(): "character varying(20)", for casts in SQL
    collations: tuple[str, ...]  # each column's collation ("C", "en_US.utf8"; "" for none)
    primary_key: tuple[str, ...]
    identity: str  # pg_class.relreplident: d default, n nothing, f full, i index
    identity_index: tuple[str, ...]  # columns of the REPLICA IDENTITY USING INDEX index

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


# libpq's TCP settings unless the DSN sets its own. Without them a connection across a
# network that silently drops packets (a partition, a firewall forgetting the flow) hangs
# until the kernel gives up, about 15 minutes: an idle connection would never notice, and
# the replication stream would sit RUNNING with nothing arriving. With them an idle
# connection is probed after 10 s (3 probes 5 s apart), and data the server does not
# acknowledge (the standby status updates the source sends every status_interval) fails the
# connection after 30 s; the source then reconnects with backoff and resumes from its slot.
TCP_DEFAULTS: dict[str, str] = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
    "connect_timeout": "10",
}


def session_conninfo(dsn: str, **extra: Any) -> str:
    """``dsn`` with :data:`SESSION_OPTIONS` appended to its ``options`` (kept, not replaced)
    and :data:`TCP_DEFAULTS` for the TCP settings it leaves out."""
    params = conninfo_to_dict(dsn)
    ours = " ".join(f"-c {k}={v.replace(' ', chr(92) + ' ')}" for k, v in SESSION_OPTIONS.items())
    options = f"{params.get('options', '')} {ours}".strip()
    extra.setdefault("application_name", "changehub")
    for key, value in TCP_DEFAULTS.items():
        if key not in params:
            extra.setdefault(key, value)
    return make_conninfo(dsn, options=options, **extra)


def catalog_error(exc: BaseException, doing: str) -> Exception:
    """A psycopg error as a changehub error: retriable if the connection failed, else fatal."""
    text = mask(str(exc).strip())
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, psycopg.OperationalError) and sqlstate not in (
        "28P01",  # invalid password
        "28000",  # invalid authorization (pg_hba, no REPLICATION)
        "3D000",  # database does not exist
        "42501",  # insufficient privilege
    ):
        return RetriableError(f"{doing}: {text}")
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
        return SchemaError(f"{doing}: {text}")
    return FatalError(f"{doing}: {text}")


def connect(dsn: str, *, application_name: str = "changehub") -> psycopg.Connection[Any]:
    """An autocommit connection with the session settings the type mapping relies on."""
    try:
        return psycopg.connect(
            session_conninfo(dsn, application_name=application_name), autocommit=True
        )
    except psycopg.Error as exc:
        raise catalog_error(exc, "connecting to Postgres") from None


def quote_table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def table_info(conn: psycopg.Connection[Any], schema: str, name: str) -> TableInfo:
    """Columns, primary key and replica identity; :class:`SchemaError` if there is no table."""
    row = conn.execute(
        "SELECT c.oid, c.relreplident, c.relkind FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    ).fetchone()
    if row is None:
        raise SchemaError(
            f"table {schema}.{name} does not exist (or this user cannot see it): create it, "
            "fix the name in `tables`, or GRANT USAGE ON SCHEMA and SELECT on it to this user"
        )
    oid, identity, relkind = row
    # The database's default collation; under ICU (Postgres 15+) not a libc locale name.
    default_collation = (
        "CASE WHEN datlocprovider = 'i' THEN 'icu' ELSE datcollate END"
        if conn.info.server_version >= 150000
        else "datcollate"
    )
    if relkind not in ("r", "p"):
        raise SchemaError(f"{schema}.{name} is not a table (relkind {relkind!r}): list tables only")
    columns = conn.execute(
        "SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod), "
        "CASE WHEN a.attcollation = 0 THEN '' WHEN c.collname <> 'default' THEN c.collname "
        f" ELSE (SELECT {default_collation} FROM pg_database "
        "  WHERE datname = current_database()) END "
        "FROM pg_attribute a LEFT JOIN pg_collation c ON c.oid = a.attcollation "
        "WHERE a.attrelid = %s AND a.attnum > 0 "
        "AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
        (oid,),
    ).fetchall()
    return TableInfo(
        oid=oid,
        schema=schema,
        name=name,
        columns=tuple(c[0] for c in columns),
        type_oids=tuple(c[1] for c in columns),
        type_names=tuple(c[2] for c in columns),
        collations=tuple(c[3] for c in columns),
        primary_key=_index_columns(conn, oid, "indisprimary"),
        identity=identity,
        identity_index=_index_columns(conn, oid, "indisreplident"),
    )


def _index_columns(conn: psycopg.Connection[Any], oid: int, flag: str) -> tuple[str, ...]:
    rows = conn.execute(
        sql.SQL(
            "SELECT a.attname FROM pg_index i "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = %s AND i.{} ORDER BY k.ord"
        ).format(sql.Identifier(flag)),
        (oid,),
    ).fetchall()
    return tuple(r[0] for r in rows)


def load_types(conn: psycopg.Connection[Any], oids: Iterable[int]) -> list[PgType]:
    """``pg_type`` facts for ``oids`` (for :class:`types.TypeMap`)."""
    multirange = (
        "LEFT JOIN pg_range mr ON mr.rngmultitypid = t.oid"
        if conn.info.server_version >= 140000
        else "LEFT JOIN (SELECT NULL::oid AS rngsubtype) mr ON false"
    )
    rows = conn.execute(
        "SELECT t.oid, t.typname, t.typtype, "
        "CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END, t.typbasetype, "
        "COALESCE(r.rngsubtype, mr.rngsubtype, 0), COALESCE(e.typdelim, ',') "
        "FROM pg_type t LEFT JOIN pg_range r ON r.rngtypid = t.oid "
        f"{multirange} "
        "LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' "
        "WHERE t.oid = ANY(%s)",
        (list(oids),),
    ).fetchall()
    return [
        PgType(
            oid=int(r[0]),
            name=r[1],
            kind=r[2],
            element=int(r[3]),
            base=int(r[4]),
            subtype=int(r[5]),
            delimiter=r[6],
        )
        for r in rows
    ]


def estimated_rows(conn: psycopg.Connection[Any], oid: int) -> int | None:
    """The planner's row estimate (``pg_class.reltuples``); None if never analyzed."""
    row = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s", (oid,)).fetchone()
    return None if row is None or row[0] < 0 else int(row[0])


def snapshot_visibility(conn: psycopg.Connection[Any]) -> str:
    """The transaction's snapshot as ``xmin:xmax:xip,…`` (``pg_current_snapshot``)."""
    name = "pg_current_snapshot" if conn.info.server_version >= 130000 else "txid_current_snapshot"
    row = conn.execute(f"SELECT {name}()::text").fetchone()
    assert row is not None
    return str(row[0])


def current_wal_lsn(conn: psycopg.Connection[Any]) -> Lsn:
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return Lsn.parse(row[0])


def setting(conn: psycopg.Connection[Any], name: str) -> str:
    row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
    assert row is not None
    return str(row[0])


def slot_state(conn: psycopg.Connection[Any], slot: str) -> dict[str, Any] | None:
    """The slot's row in ``pg_replication_slots`` (plugin, database, positions), or None."""
    cur = conn.execute(
        "SELECT slot_name, plugin, slot_type, database, active, active_pid, "
        "restart_lsn::text, confirmed_flush_lsn::text FROM pg_replication_slots "
        "WHERE slot_name = %s",
        (slot,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    names: Sequence[str] = [d.name for d in cur.description or ()]
    return dict(zip(names, row, strict=True))
