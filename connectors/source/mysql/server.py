"""The control connection: connecting, telling MariaDB from MySQL, reading positions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import pymysql

from connectors.source.mysql.binlog import connection_error
from connectors.source.mysql.checkpoint import Position
from hub.errors import FatalError

__all__ = ["connect", "current_position", "is_mariadb", "variables"]

if TYPE_CHECKING:
    Connection: TypeAlias = pymysql.connections.Connection[Any]
else:
    Connection = pymysql.connections.Connection


def connect(settings: dict[str, Any], doing: str = "connecting") -> Connection:
    try:
        conn = pymysql.connect(**settings, autocommit=True)
    except pymysql.err.MySQLError as exc:
        raise connection_error(exc, doing) from None
    with conn.cursor() as cur:
        # TIMESTAMP columns are read in UTC, as the binlog carries them.
        cur.execute("SET SESSION time_zone = '+00:00'")
    return conn


def variables(conn: Connection, *names: str) -> dict[str, str | None]:
    """Global server variables by name (None where the server has no such variable)."""
    out: dict[str, str | None] = dict.fromkeys(names)
    with conn.cursor() as cur:
        cur.execute(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN (" + ",".join(["%s"] * len(names)) + ")",
            [n for n in names],
        )
        for name, value in cur.fetchall():
            out[str(name).lower()] = None if value is None else str(value)
    return out


def is_mariadb(conn: Connection) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        row = cur.fetchone()
    return row is not None and "mariadb" in str(row[0]).lower()


def _binlog_status(cur: Any) -> tuple[str, int]:
    try:
        cur.execute("SHOW BINARY LOG STATUS")  # MySQL >= 8.2
    except pymysql.err.ProgrammingError:
        cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    if row is None:
        raise FatalError(
            "the server writes no binlog (log_bin is OFF): start it with --log-bin "
            "(and binlog_format=ROW, binlog_row_image=FULL); see `changehub doctor`"
        )
    return str(row[0]), int(row[1])


def current_position(conn: Connection, mariadb: bool) -> Position:
    """The position after every transaction committed so far."""
    with conn.cursor() as cur:
        file, pos = _binlog_status(cur)
        gtid = None
        if mariadb:
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
            row = cur.fetchone()
            gtid = "" if row is None or row[0] is None else str(row[0])
    return Position(gtid, file, pos)
