"""Heartbeats: keep the slot moving when the captured tables are idle.

A slot holds back WAL from its confirmed position on. If the captured tables see no writes
while the rest of the server (other databases, other tables) writes a lot, no change comes
down the stream, no batch is written, and without heartbeats the slot would never be
confirmed further: WAL piles up on the server's disk.

Every ``heartbeat_interval`` with nothing else to hand over, the reader asks the server for a
keepalive (a status update with "reply requested"). The keepalive carries the position up
to which the walsender has decoded and sent everything; with no transaction open, every
transaction committed before it is in a batch already, so the reader hands over an empty
batch whose checkpoint is that position. The hub appends it (a checkpoint without records)
and calls ``committed``, which confirms the slot there. So even heartbeats release WAL only
through ``committed``, after the log made the checkpoint durable.

``heartbeat_action: message`` also writes a tiny non-transactional logical message
(``pg_logical_emit_message(false, 'changehub.heartbeat', '')``) into the captured database at
each heartbeat, for servers so idle that the walsender itself has nothing to decode; it
costs one small WAL record per interval.

Slot lag — bytes of WAL between the server's current position and the slot's confirmed
flush position — is measured at each heartbeat and exposed; ``max_lag_bytes`` turns it into
a guard (see :class:`LagGuard`).

Both queries run on the catalog connection, on the reader's thread, so one that never gets
an answer (a silent network partition the kernel does not notice) would hold the reader and
its receive deadline with it: they are given ``receive_timeout`` too (:func:`answer_within`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from connectors.source.postgres.catalog import catalog_error
from hub.errors import FatalError, RetriableError

__all__ = [
    "HEARTBEAT_PREFIX",
    "Heartbeat",
    "LagGuard",
    "SlotLag",
    "answer_within",
    "measure_lag",
]

HEARTBEAT_PREFIX = "changehub.heartbeat"


@dataclass(frozen=True)
class SlotLag:
    wal_lsn: int  # the server's current WAL insert position
    confirmed_lsn: int | None  # the slot's confirmed flush position
    lag_bytes: int | None


@contextlib.contextmanager
def answer_within(
    conn: psycopg.Connection[Any], seconds: float | None, doing: str
) -> Iterator[None]:
    """Fail the query run inside with RetriableError if Postgres has not answered it within
    ``seconds``: a watchdog shuts the connection's socket down, which ends the blocked read
    (psycopg has no client-side timeout, and a cancel request would take the same dead
    path). Other psycopg errors become changehub errors as usual."""
    fired = threading.Event()
    timer: threading.Timer | None = None
    if seconds is not None:
        fd = conn.pgconn.socket

        def expire() -> None:
            fired.set()
            with contextlib.suppress(OSError):
                sock = socket.socket(fileno=os.dup(fd))
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                finally:
                    sock.close()

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
    try:
        yield
    except psycopg.Error as exc:
        if fired.is_set():
            raise RetriableError(
                f"{doing}: no answer from Postgres within {seconds:g} s (receive_timeout): "
                "taking the connection for dead and reconnecting"
            ) from None
        raise catalog_error(exc, doing) from None
    finally:
        if timer is not None:
            timer.cancel()


def measure_lag(conn: psycopg.Connection[Any], slot: str, timeout: float | None = None) -> SlotLag:
    with answer_within(conn, timeout, "measuring the slot's lag"):
        row = conn.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, "
            "(SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots "
            " WHERE slot_name = %s)",
            (slot,),
        ).fetchone()
    assert row is not None
    wal, confirmed = int(row[0]), None if row[1] is None else int(row[1])
    return SlotLag(wal, confirmed, None if confirmed is None else max(0, wal - confirmed))


class Heartbeat:
    """When the next heartbeat is due, and its optional write into the database."""

    def __init__(
        self,
        interval_ms: int,
        *,
        emit: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval_ms / 1000
        self._emit = emit
        self._clock = clock
        self._next = clock() + self.interval

    def seconds_left(self) -> float:
        return max(0.0, self._next - self._clock())

    def due(self) -> bool:
        return self._clock() >= self._next

    def beat(self) -> None:
        """Run the heartbeat action (if any) and schedule the next one."""
        self._next = self._clock() + self.interval
        if self._emit is not None:
            self._emit()

    def postpone(self) -> None:
        """Something was handed over anyway: no heartbeat needed for an interval."""
        self._next = self._clock() + self.interval


def emit_heartbeat_message(conn: psycopg.Connection[Any], timeout: float | None = None) -> None:
    with answer_within(conn, timeout, "writing a heartbeat message"):
        conn.execute("SELECT pg_logical_emit_message(false, %s, '')", (HEARTBEAT_PREFIX,))


class LagGuard:
    """``max_lag_bytes``: past it, drop the slot so the server can free its WAL, and fail.

    This protects the database's disk when changehub cannot keep up or cannot write its log
    for a long time; the price is a re-snapshot (the failure message says how). Without
    ``max_lag_bytes`` the slot holds WAL for as long as it takes — Postgres' own
    ``max_slot_wal_keep_size`` is the server-side version of this guard.
    """

    def __init__(self, max_lag_bytes: int | None, slot: str) -> None:
        self.max_lag_bytes = max_lag_bytes
        self.slot = slot

    def check(self, lag: SlotLag, drop_slot: Callable[[], None]) -> None:
        if self.max_lag_bytes is None or lag.lag_bytes is None:
            return
        if lag.lag_bytes <= self.max_lag_bytes:
            return
        drop_slot()
        raise FatalError(
            f"replication slot {self.slot} was {lag.lag_bytes} bytes behind the server, more "
            f"than max_lag_bytes ({self.max_lag_bytes}), so it was dropped to free the "
            "server's WAL; changes since then are not in the log. To capture again from a "
            "fresh snapshot, start the source with `snapshot: always` (or reset it with "
            "`changehub reset`); raise max_lag_bytes or find why the log fell behind first"
        )
