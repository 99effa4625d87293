"""``changehub doctor`` for Postgres: is the database set up for logical replication?

:func:`diagnose` connects with the source's own settings and returns one :class:`Finding`
per check, each problem with the exact statement or setting that fixes it: wal_level, the
REPLICATION privilege and a pg_hba.conf line for replication connections, free replication
slots and WAL senders, the slot (plugin, database, lost WAL), the publication (missing and
not creatable, or owned by someone else and lacking tables), and every table (exists,
readable, has a key, how its large values will be handled).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from connectors.doctor import Finding
from connectors.source.postgres.catalog import connect, setting, table_info
from connectors.source.postgres.config import PostgresSourceConfig, TableName
from connectors.source.postgres.handoff import Waker
from connectors.source.postgres.publication import published_tables
from connectors.source.postgres.replication import ReplicationConnection
from connectors.source.postgres.schema import choose_key
from connectors.source.postgres.slot import check_usable, read_slot
from hub.errors import ChangehubError
from hub.secrets import mask

__all__ = ["Finding", "diagnose"]

# Types whose values Postgres may store out of line (TOAST): variable-length ones.
_TOASTABLE = "SELECT typlen = -1 FROM pg_type WHERE oid = %s"


def diagnose(config: PostgresSourceConfig) -> list[Finding]:
    """Connect and check everything (a connection failure is itself a finding)."""
    try:
        conn = connect(config.dsn, application_name=f"changehub doctor {config.name}")
    except ChangehubError as exc:
        return [
            Finding("error", "connection", str(exc), "check the dsn: host, port, user, password")
        ]
    try:
        return check_database(conn, config)
    finally:
        conn.close()


def check_database(conn: psycopg.Connection[Any], config: PostgresSourceConfig) -> list[Finding]:
    user = conn.info.user
    findings = [_version(conn), _wal_level(conn), _privilege(conn, user)]
    if config.snapshot != "initial_only":
        findings.append(_replication_connection(config, user))
        findings.extend(_slots(conn, config))
        findings.append(_publication(conn, config, user))
    for table in config.table_names:
        findings.extend(_table(conn, config, table))
    return findings


def _version(conn: psycopg.Connection[Any]) -> Finding:
    version = conn.info.server_version
    text = f"{version // 10000}.{version % 10000}"
    if version < 100000:
        return Finding(
            "error",
            "server version",
            f"PostgreSQL {text} has no pgoutput plugin",
            "upgrade to PostgreSQL 10 or newer (14 or newer recommended)",
        )
    if version < 140000:
        return Finding(
            "warning",
            "server version",
            f"PostgreSQL {text} sends no logical messages: heartbeat messages and "
            "incremental snapshots are unavailable",
            "upgrade to PostgreSQL 14 or newer",
        )
    return Finding("ok", "server version", f"PostgreSQL {text}")


def _wal_level(conn: psycopg.Connection[Any]) -> Finding:
    level = setting(conn, "wal_level")
    if level != "logical":
        return Finding(
            "error",
            "wal_level",
            f"is {level}, must be logical",
            "run ALTER SYSTEM SET wal_level = logical; as a superuser, then restart "
            "PostgreSQL (wal_level cannot change while it runs)",
        )
    return Finding("ok", "wal_level", "logical")


def _privilege(conn: psycopg.Connection[Any], user: str) -> Finding:
    row = conn.execute(
        "SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row is None or not (row[0] or row[1]):
        return Finding(
            "error",
            "REPLICATION privilege",
            f"role {user} may not open replication connections",
            f'as a superuser run ALTER ROLE "{user}" REPLICATION;',
        )
    return Finding("ok", "REPLICATION privilege", f"role {user} has it")


def _replication_connection(config: PostgresSourceConfig, user: str) -> Finding:
    stop = Waker()
    repl = ReplicationConnection(config.dsn, stop=stop, application_name="changehub doctor")
    try:
        repl.connect()
        repl.command("IDENTIFY_SYSTEM")
    except ChangehubError as exc:
        message = mask(str(exc))
        if "pg_hba.conf" in message:
            host = conninfo_to_dict(config.dsn).get("host", "localhost")
            fix = (
                f"allow it in pg_hba.conf of the server at {host}, e.g. `host replication "
                f"{user} <client address>/32 scram-sha-256`, then SELECT pg_reload_conf();"
            )
        elif "replication" in message and ("role" in message or "privilege" in message):
            fix = f'as a superuser run ALTER ROLE "{user}" REPLICATION;'
        else:
            fix = "check max_wal_senders and the server log for why it was refused"
        return Finding("error", "replication connection", message, fix)
    finally:
        repl.close()
        stop.close()
    return Finding("ok", "replication connection", "accepted")


def _slots(conn: psycopg.Connection[Any], config: PostgresSourceConfig) -> list[Finding]:
    out: list[Finding] = []
    state = read_slot(conn, config.slot)
    if state is not None:
        try:
            check_usable(state, conn.info.dbname)
        except ChangehubError as exc:
            message, _, fix = str(exc).partition(": ")
            return [Finding("error", "replication slot", message, fix or None)]
        if state.active_pid is not None:
            out.append(
                Finding(
                    "warning",
                    "replication slot",
                    f"{config.slot} is in use by process {state.active_pid} (a running changehub, "
                    "or another consumer: only one may use a slot)",
                )
            )
        else:
            out.append(
                Finding(
                    "ok",
                    "replication slot",
                    f"{config.slot} exists, confirmed up to {state.confirmed_flush_lsn}",
                )
            )
        return out
    limit = int(setting(conn, "max_replication_slots"))
    rows = conn.execute(
        "SELECT slot_name, active FROM pg_replication_slots ORDER BY slot_name"
    ).fetchall()
    if len(rows) >= limit:
        idle = [r[0] for r in rows if not r[1]]
        drop = " ".join(f"SELECT pg_drop_replication_slot('{s}');" for s in idle[:3])
        out.append(
            Finding(
                "error",
                "free replication slots",
                f"all {limit} slots are taken (max_replication_slots), none left for {config.slot}",
                "raise max_replication_slots in postgresql.conf and restart PostgreSQL"
                + (f", or drop a slot nobody uses: {drop}" if idle else ""),
            )
        )
    else:
        out.append(
            Finding(
                "ok",
                "free replication slots",
                f"{limit - len(rows)} of {limit} free; {config.slot} will be created",
            )
        )
    senders = int(setting(conn, "max_wal_senders"))
    row = conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()
    used = int(row[0]) if row else 0
    if used >= senders:
        out.append(
            Finding(
                "error",
                "free WAL senders",
                f"all {senders} WAL senders are busy (max_wal_senders)",
                "raise max_wal_senders in postgresql.conf and restart PostgreSQL",
            )
        )
    return out


def _publication(conn: psycopg.Connection[Any], config: PostgresSourceConfig, user: str) -> Finding:
    name = config.publication_name
    row = conn.execute(
        "SELECT pg_get_userbyid(pubowner), pg_get_userbyid(pubowner) = current_user, "
        "puballtables FROM pg_publication WHERE pubname = %s",
        (name,),
    ).fetchone()
    tables = ", ".join(config.tables)
    if row is None:
        can_create = conn.execute(
            "SELECT has_database_privilege(current_database(), 'CREATE')"
        ).fetchone()
        not_owned = [t for t in config.table_names if not _owns(conn, t)]
        if not (can_create and can_create[0]) or not_owned:
            return Finding(
                "error",
                "publication",
                f"{name} does not exist and {user} cannot create it"
                + (
                    f" (does not own {', '.join(not_owned)})"
                    if not_owned
                    else " (no CREATE privilege on the database)"
                ),
                f"have the tables' owner run CREATE PUBLICATION {name} FOR TABLE {tables};",
            )
        return Finding("ok", "publication", f"{name} will be created for {tables}")
    owner, ours, all_tables = row
    missing = [] if all_tables else sorted(set(config.tables) - published_tables(conn, name))
    if missing and not ours:
        return Finding(
            "error",
            "publication",
            f"{name} belongs to {owner} and lacks {', '.join(missing)}",
            f"ask {owner} to run ALTER PUBLICATION {name} ADD TABLE {', '.join(missing)}; "
            "or set `publication:` to a new name and changehub creates its own",
        )
    if missing:
        return Finding("ok", "publication", f"{name} exists; {', '.join(missing)} will be added")
    return Finding("ok", "publication", f"{name} publishes {tables}")


def _owns(conn: psycopg.Connection[Any], table: TableName) -> bool:
    """Whether the user owns ``table`` (directly or through a role), as publishing needs."""
    row = conn.execute(
        "SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (table.schema, table.table),
    ).fetchone()
    return row is None or bool(row[0])  # a missing table is reported by its own check


def _table(
    conn: psycopg.Connection[Any], config: PostgresSourceConfig, name: TableName
) -> list[Finding]:
    check = f"table {name}"
    try:
        info = table_info(conn, name.schema, name.table)
        key = choose_key(
            name,
            info.columns,
            configured=config.key_columns.get(name),
            primary_key=info.primary_key,
            identity=info.identity,
            identity_index=info.identity_index,
        )
    except ChangehubError as exc:
        message, _, fix = str(exc).partition(": ")
        return [Finding("error", check, message, fix or None)]
    out: list[Finding] = []
    readable = conn.execute("SELECT has_table_privilege(%s, 'SELECT')", (info.oid,)).fetchone()
    if not (readable and readable[0]):
        out.append(
            Finding(
                "error",
                check,
                f"{conn.info.user} may not read it (the snapshot needs SELECT)",
                f'GRANT SELECT ON {name} TO "{conn.info.user}";',
            )
        )
    toastable = [
        c
        for c, oid in zip(info.columns, info.type_oids, strict=True)
        if (row := conn.execute(_TOASTABLE, (oid,)).fetchone()) and row[0]
    ]
    if toastable and info.identity != "f":
        identity = "DEFAULT" if info.identity == "d" else "INDEX"
        how = (
            "are filled from the row's last image in the log"
            if config.toast == "log"
            else "make the source stop (toast: fail)"
        )
        out.append(
            Finding(
                "warning",
                check,
                f"large values of {', '.join(toastable)} left unchanged by an update are not "
                f"sent by Postgres under REPLICA IDENTITY {identity}; they {how}",
                f"ALTER TABLE {name} REPLICA IDENTITY FULL; (Postgres then sends the old row)",
            )
        )
    keyed = f"key {', '.join(key)}" if key else "no key (REPLICA IDENTITY FULL): null keys"
    out.append(Finding("ok", check, keyed))
    return out
