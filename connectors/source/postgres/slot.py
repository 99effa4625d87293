"""The replication slot: created when missing, reused on restart, checked for fitness.

A logical slot remembers, on the server, how far its consumer has confirmed, and holds the
WAL after that. It is created on the replication connection (``CREATE_REPLICATION_SLOT``,
which can export a snapshot for the initial read) and confirmed only from
``PostgresSource.committed``. Here: reading its state, deciding whether an existing slot can
be used, dropping it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg

from connectors.source.postgres.catalog import catalog_error
from connectors.source.postgres.lsn import Lsn
from hub.errors import FatalError, RetriableError

__all__ = ["SlotState", "drop_slot", "read_slot"]


@dataclass(frozen=True)
class SlotState:
    name: str
    plugin: str | None
    database: str | None
    active_pid: int | None
    restart_lsn: Lsn | None
    confirmed_flush_lsn: Lsn | None
    wal_status: str | None  # reserved | extended | unreserved | lost (Postgres 13+)


def read_slot(conn: psycopg.Connection[Any], name: str) -> SlotState | None:
    """The slot's state, or None if it does not exist."""
    try:
        row = conn.execute(
            "SELECT slot_name, plugin, database, active_pid, restart_lsn::text, "
            "confirmed_flush_lsn::text, "
            + ("wal_status" if conn.info.server_version >= 130000 else "NULL")
            + " FROM pg_replication_slots WHERE slot_name = %s",
            (name,),
        ).fetchone()
    except psycopg.Error as exc:
        raise catalog_error(exc, f"reading replication slot {name}") from None
    if row is None:
        return None
    return SlotState(
        name=row[0],
        plugin=row[1],
        database=row[2],
        active_pid=row[3],
        restart_lsn=None if row[4] is None else Lsn.parse(row[4]),
        confirmed_flush_lsn=None if row[5] is None else Lsn.parse(row[5]),
        wal_status=row[6],
    )


def check_usable(state: SlotState, database: str) -> None:
    """Raise :class:`FatalError` if an existing slot cannot serve this source."""
    if state.plugin != "pgoutput":
        raise FatalError(
            f"replication slot {state.name} exists but is not a logical pgoutput slot "
            f"(plugin {state.plugin!r}): set `slot_name:` to another name, or drop it with "
            f"SELECT pg_drop_replication_slot('{state.name}');"
        )
    if state.database != database:
        raise FatalError(
            f"replication slot {state.name} belongs to database {state.database}, not "
            f"{database}: set `slot_name:` to another name"
        )
    if state.wal_status == "lost":
        raise FatalError(
            f"replication slot {state.name} lost WAL it needed (max_slot_wal_keep_size was "
            "exceeded), so changes are missing: drop it with "
            f"SELECT pg_drop_replication_slot('{state.name}'); and start the source with "
            "`snapshot: always` to capture again from a fresh snapshot"
        )


def drop_slot(conn: psycopg.Connection[Any], name: str, timeout: float = 30.0) -> None:
    """Drop the slot, waiting (up to ``timeout``) for a walsender still using it to exit."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s",
                (name,),
            )
            return
        except psycopg.errors.ObjectInUse as exc:
            if time.monotonic() >= deadline:
                raise RetriableError(
                    f"replication slot {name} is still in use by another connection: {exc}"
                ) from None
            # The walsender of a connection we just closed exits within moments.
            conn.execute("SELECT pg_sleep(0.1)")
        except psycopg.Error as exc:
            raise catalog_error(exc, f"dropping replication slot {name}") from None
