"""``changehub doctor`` for MySQL / MariaDB: is the server set up for binlog capture?

:func:`diagnose` connects with the source's own settings and returns one
:class:`Finding` per check, each problem with the exact statement or option that fixes it.
The source runs the same checks when it starts and refuses to run on an ``error``.
"""

from __future__ import annotations

import re
from typing import Any

from connectors.doctor import Finding
from connectors.source.mysql.config import MySqlSourceConfig
from connectors.source.mysql.server import Connection, connect, is_mariadb, variables

__all__ = ["Finding", "check_server", "diagnose"]

_GRANT = re.compile(r"^GRANT (.+?) ON (\S+) TO ", re.IGNORECASE)


def diagnose(config: MySqlSourceConfig) -> list[Finding]:
    """Connect and check everything (a connection failure is itself a finding)."""
    try:
        conn = connect(dict(config.connection()), "connecting for the checks")
    except Exception as exc:  # the finding *is* the error, reported rather than raised
        return [Finding("error", "connection", str(exc), "check url/host/port/user/password")]
    try:
        return check_server(conn, config)
    finally:
        conn.close()


def _setting(
    values: dict[str, str | None], name: str, want: str, fix: str, *, mariadb: bool
) -> Finding:
    value = values.get(name)
    if name == "binlog_row_metadata" and (value or "").upper() != want:
        # Not fatal: without column names in the binlog the source keeps a schema history.
        return Finding(
            "warning",
            name,
            (f"is {value}" if value is not None else "the server has no such variable (too "
             "old for row metadata: MariaDB >= 10.5 or MySQL >= 8.0.1 have it)")
            + ": the binlog carries no column names, so the source follows DDL statements "
            "in a schema history instead, which cannot follow every statement",
            fix if value is not None else "upgrade the server",
        )  # fmt: skip
    if value is None:
        return Finding("error", name, "not available", None)
    if value.upper() != want:
        return Finding("error", name, f"is {value}, must be {want}", fix)
    return Finding("ok", name, value)


def check_server(conn: Connection, config: MySqlSourceConfig) -> list[Finding]:
    mariadb = is_mariadb(conn)
    conf = "my.cnf [mariadb]" if mariadb else "my.cnf [mysqld]"
    values = variables(
        conn, "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata", "server_id"
    )
    out = [
        _setting(
            values, "log_bin", "ON",
            f"start the server with --log-bin=mysql-bin (log_bin = mysql-bin in {conf}); "
            "it cannot be switched on at runtime", mariadb=mariadb,
        ),
        _setting(
            values, "binlog_format", "ROW",
            f"SET GLOBAL binlog_format = 'ROW'; and binlog_format = ROW in {conf}",
            mariadb=mariadb,
        ),
        _setting(
            values, "binlog_row_image", "FULL",
            f"SET GLOBAL binlog_row_image = 'FULL'; and binlog_row_image = FULL in {conf}",
            mariadb=mariadb,
        ),
        _setting(
            values, "binlog_row_metadata", "FULL",
            f"SET GLOBAL binlog_row_metadata = 'FULL'; and binlog_row_metadata = FULL in {conf} "
            "(without it the binlog carries no column names)", mariadb=mariadb,
        ),
    ]  # fmt: skip
    server_id = int(values.get("server_id") or 0)
    if server_id == 0:
        out.append(
            Finding(
                "error",
                "server_id",
                "is 0: the server refuses binlog clients",
                f"SET GLOBAL server_id = 1; and server_id = 1 in {conf}",
            )
        )
    elif server_id == config.effective_server_id:
        out.append(
            Finding(
                "error",
                "server_id",
                f"the source's server_id {config.effective_server_id} equals the server's own",
                "set `server_id:` in the source's config to a number no replica uses",
            )
        )
    else:
        out.append(
            Finding("ok", "server_id", f"server {server_id}, source {config.effective_server_id}")
        )
    out.extend(_privileges(conn, config, mariadb))
    return out


def _grants(conn: Connection) -> list[tuple[set[str], str]]:
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        rows: list[Any] = list(cur.fetchall())
    grants = []
    for (line,) in rows:
        m = _GRANT.match(str(line))
        if m:
            privs = {p.strip().upper() for p in m.group(1).split(",")}
            grants.append((privs, m.group(2).replace("`", "")))
    return grants


def _has(grants: list[tuple[set[str], str]], privilege: str, on: str = "*.*") -> bool:
    db = on.split(".", maxsplit=1)[0]
    for privs, target in grants:
        if target not in ("*.*", on, f"{db}.*"):
            continue
        if privilege in privs or "ALL PRIVILEGES" in privs or "ALL" in privs:
            return True
    return False


def _privileges(conn: Connection, config: MySqlSourceConfig, mariadb: bool) -> list[Finding]:
    grants = _grants(conn)
    user = config.connection()["user"]
    out = []
    needed: list[tuple[str, tuple[str, ...], str]] = [
        ("REPLICATION SLAVE", ("REPLICATION SLAVE", "REPLICATION REPLICA"), "read the binlog"),
        (
            "REPLICATION CLIENT",
            ("REPLICATION CLIENT", "BINLOG MONITOR"),
            "read binlog positions (SHOW MASTER STATUS)",
        ),
    ]
    if not mariadb:
        needed.append(("RELOAD", ("RELOAD",), "take the snapshot's brief read lock"))
    for name, aliases, why in needed:
        if any(_has(grants, a) for a in aliases):
            out.append(Finding("ok", f"privilege {name}", "granted"))
        else:
            grant = "BINLOG MONITOR" if mariadb and name == "REPLICATION CLIENT" else name
            out.append(
                Finding(
                    "error",
                    f"privilege {name}",
                    f"missing; needed to {why}",
                    f"GRANT {grant} ON *.* TO '{user}'@'%';",
                )
            )
    targets = list(config.databases) + list(config.tables)
    for target in targets:
        on = target if "." in target else f"{target}.*"
        if _has(grants, "SELECT", on):
            out.append(Finding("ok", f"SELECT on {on}", "granted"))
        else:
            out.append(
                Finding(
                    "error",
                    f"SELECT on {on}",
                    "missing; needed for the snapshot",
                    f"GRANT SELECT ON {on} TO '{user}'@'%';",
                )
            )
    return out
