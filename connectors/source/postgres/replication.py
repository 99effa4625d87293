"""The replication connection: slot commands and the COPY BOTH stream of WAL messages.

psycopg 3 has no high-level replication API, so this speaks the streaming replication
protocol through its low-level ``pq`` layer on a ``replication=database`` connection:

* commands (``IDENTIFY_SYSTEM``, ``CREATE_REPLICATION_SLOT``, ``DROP_REPLICATION_SLOT``,
  ``START_REPLICATION``) go out with ``send_query`` and are waited for on the socket, so a
  slot creation that waits for old transactions can still be interrupted (``stop`` waker);
* after ``START_REPLICATION`` the connection is in COPY BOTH: :meth:`read` returns the
  server's ``w`` (XLogData: a pgoutput message and its LSN) and ``k`` (keepalive) messages,
  and :meth:`send_status` writes standby status updates (``r``) with ``put_copy_data``.

Not thread-safe: one thread (the source's reader) owns it; other threads reach it only
through the :class:`Waker` pipes it selects on.
"""

from __future__ import annotations

import select
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import pq

from connectors.source.postgres.catalog import catalog_error, session_conninfo
from connectors.source.postgres.handoff import Waker
from connectors.source.postgres.lsn import Lsn
from connectors.source.postgres.pgoutput import PG_EPOCH_UNIX_US, DecodeError
from hub.errors import RetriableError

__all__ = [
    "KEEPALIVE",
    "XLOGDATA",
    "CreatedSlot",
    "ReceiveDeadline",
    "ReplicationConnection",
    "quote_literal",
]

XLOGDATA: Final = 0x77  # 'w'
KEEPALIVE: Final = 0x6B  # 'k'
XLOGDATA_HEADER: Final = 25  # 'w' + start LSN + end of WAL + send time
_HEADER = struct.Struct(">QQq").unpack_from
_KEEPALIVE = struct.Struct(">QqB").unpack_from
_STATUS = struct.Struct(">cQQQqB").pack


def quote_literal(value: str) -> str:
    """A string literal for replication commands (they take no bind parameters)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class CreatedSlot:
    name: str
    consistent_point: Lsn  # changes committed from here on are streamed; before: in the snapshot
    snapshot_name: str | None  # exported snapshot, valid until the next command on this connection


class ReceiveDeadline:
    """The application-level receive timeout of the replication stream.

    A silent network partition (a cable pulled, packets dropped, a proxy or NAT that stops
    forwarding) can leave the socket open, and the kernel's keepalives and user timeout do
    not fire while a middlebox keeps acknowledging: the stream just goes quiet. Postgres
    sends keepalives on its own only every ``wal_sender_timeout / 2`` and, when the client
    replies regularly, sometimes not at all; but it answers a status update that asks for a
    reply at once. So: after ``timeout / 2`` of silence the source asks for one
    (:meth:`ping_due`, :meth:`pinged`), and after ``timeout`` of silence with a request
    unanswered for at least ``timeout / 2`` the connection is dead (:meth:`check` raises
    RetriableError and the hub reconnects the source). Measured from the last moment the
    reader found messages, so a process frozen (SIGSTOP) past the timeout asks again first
    instead of giving up on a healthy server.
    """

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self._heard = clock()
        self._pinged: float | None = None

    def heard(self) -> None:
        """Messages came (called at the idle moment after them, not per message)."""
        self._heard = self._clock()
        self._pinged = None

    def ping_due(self) -> bool:
        return self._pinged is None and self._clock() - self._heard >= self.timeout / 2

    def pinged(self) -> None:
        self._pinged = self._clock()

    def seconds_left(self) -> float:
        """How long the reader may wait before looking at the deadline again."""
        now = self._clock()
        if self._pinged is None:
            return max(0.0, self._heard + self.timeout / 2 - now)
        dead_at = max(self._heard + self.timeout, self._pinged + self.timeout / 2)
        return max(0.0, dead_at - now)

    def check(self) -> None:
        """Raise RetriableError if the connection is to be taken for dead."""
        if self._pinged is None:
            return
        now = self._clock()
        if now - self._heard >= self.timeout and now - self._pinged >= self.timeout / 2:
            raise RetriableError(
                f"nothing came from Postgres on the replication connection for "
                f"{now - self._heard:.0f} s (receive_timeout {self.timeout:g} s), not even the "
                "answer to a keepalive request: taking the connection for dead and reconnecting"
            )


class ReplicationConnection:
    """A ``replication=database`` connection to one database."""

    def __init__(
        self,
        dsn: str,
        *,
        stop: Waker,
        wakers: Sequence[Waker] = (),
        application_name: str = "changehub",
    ) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._conn: psycopg.Connection[Any] | None = None
        self._stop = stop
        self._wakers = [stop, *wakers]
        self.copying = False
        self._get_copy_data: Callable[[int], tuple[int, memoryview]] = self._not_streaming

    # -- lifecycle ----------------------------------------------------------------------------

    def connect(self) -> None:
        try:
            self._conn = psycopg.connect(
                session_conninfo(
                    self._dsn, replication="database", application_name=self._application_name
                ),
                autocommit=True,
            )
        except psycopg.Error as exc:
            raise catalog_error(exc, "opening a replication connection to Postgres") from None

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def pgconn(self) -> pq.abc.PGconn:
        if self._conn is None:
            raise RetriableError("the replication connection is closed")
        return self._conn.pgconn

    def _not_streaming(self, _async: int) -> tuple[int, memoryview]:
        raise RetriableError("read from a replication connection that is not streaming")

    def close(self) -> None:
        self._get_copy_data = self._not_streaming
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- commands -----------------------------------------------------------------------------

    def command(self, text: str) -> list[tuple[str | None, ...]]:
        """Run one replication command; its result rows as text (None for NULL)."""
        pgconn = self.pgconn
        try:
            pgconn.send_query(text.encode())
            self._flush_out()
            result = None
            while True:
                readable, _, _ = select.select([pgconn.socket, self._stop.fileno()], [], [])
                if self._stop.fileno() in readable:
                    raise RetriableError(f"stopped while running {text.split(' ', 1)[0]}")
                pgconn.consume_input()
                while not pgconn.is_busy():
                    res = pgconn.get_result()
                    if res is None:
                        return self._rows(result, text)
                    if res.status == pq.ExecStatus.COPY_BOTH:
                        self.copying = True
                        return []
                    result = res
        except psycopg.Error as exc:
            raise catalog_error(exc, f"running {text.split(' ', 1)[0]}") from None

    def _rows(self, result: pq.abc.PGresult | None, text: str) -> list[tuple[str | None, ...]]:
        if result is None:
            return []
        if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            message = (result.error_message or b"").decode("utf-8", "replace").strip()
            sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
            error = psycopg.errors.lookup(sqlstate.decode()) if sqlstate else psycopg.Error
            raise catalog_error(error(message), f"running {text.split(' ', 1)[0]}")
        return [
            tuple(
                None if (v := result.get_value(r, c)) is None else bytes(v).decode()
                for c in range(result.nfields)
            )
            for r in range(result.ntuples)
        ]

    def create_slot(self, name: str, *, export_snapshot: bool) -> CreatedSlot:
        """``CREATE_REPLICATION_SLOT name LOGICAL pgoutput``, exporting a snapshot if asked.

        The exported snapshot stays valid only until the next command on this connection:
        import it (``SET TRANSACTION SNAPSHOT``) before running anything else here.
        """
        mode = "EXPORT_SNAPSHOT" if export_snapshot else "NOEXPORT_SNAPSHOT"
        rows = self.command(f'CREATE_REPLICATION_SLOT "{name}" LOGICAL pgoutput {mode}')
        slot_name, consistent_point, snapshot_name, _plugin = rows[0]
        assert slot_name is not None and consistent_point is not None
        return CreatedSlot(slot_name, Lsn.parse(consistent_point), snapshot_name)

    def drop_slot(self, name: str) -> None:
        self.command(f'DROP_REPLICATION_SLOT "{name}" WAIT')

    def start(
        self,
        slot: str,
        start: int,
        *,
        publication: str,
        protocol_version: int,
        streaming: bool = False,
        messages: bool = True,
    ) -> None:
        """``START_REPLICATION``: from here on the connection streams (COPY BOTH)."""
        options = [
            f"proto_version '{protocol_version}'",
            f"publication_names {quote_literal(publication)}",
        ]
        if messages:
            options.append("messages 'true'")
        if streaming:
            options.append("streaming 'on'")
        self.command(f'START_REPLICATION SLOT "{slot}" LOGICAL {Lsn(start)} ({", ".join(options)})')
        if not self.copying:
            raise RetriableError(f"START_REPLICATION on slot {slot} did not start streaming")
        self._get_copy_data = self.pgconn.get_copy_data  # bound once: read per message

    # -- streaming ----------------------------------------------------------------------------

    def read_nowait(self) -> bytes | None:
        """The next complete CopyData message if one is buffered, else None (never blocks)."""
        try:
            n, data = self._get_copy_data(1)
        except psycopg.Error as exc:
            raise catalog_error(exc, "reading the replication stream") from None
        if n > 0:
            return bytes(data)
        if n == 0:
            return None
        self.copying = False
        self._end_of_stream()
        raise AssertionError("unreachable")

    def wait(self, timeout: float | None) -> bool:
        """Wait until the server sent more (True), or a waker fired or ``timeout`` (False)."""
        sock = self.pgconn.socket
        readable, _, _ = select.select([sock, *(w.fileno() for w in self._wakers)], [], [], timeout)
        if sock not in readable:
            return False
        try:
            self.pgconn.consume_input()
        except psycopg.Error as exc:
            raise catalog_error(exc, "reading the replication stream") from None
        return True

    def _end_of_stream(self) -> None:
        res = self.pgconn.get_result()
        detail = ""
        if res is not None and res.error_message:
            detail = ": " + res.error_message.decode("utf-8", "replace").strip()
        raise RetriableError(f"Postgres ended the replication stream{detail}")

    def send_status(self, *, written: int, flushed: int, reply: bool = False) -> None:
        """A standby status update: ``flushed`` is what the slot may confirm (and free)."""
        now_us = int(time.time() * 1_000_000) - PG_EPOCH_UNIX_US
        message = _STATUS(b"r", written, flushed, flushed, now_us, 1 if reply else 0)
        try:
            if self.pgconn.put_copy_data(message) != 1:
                raise RetriableError("could not send a status update to Postgres")
            self._flush_out()
        except psycopg.Error as exc:
            raise catalog_error(exc, "sending a status update") from None

    def _flush_out(self) -> None:
        pgconn = self.pgconn
        while pgconn.flush() == 1:
            select.select([], [pgconn.socket], [])


def parse_xlogdata(message: bytes) -> tuple[int, int, bytes]:
    """``w`` message -> (LSN of the change, server's end of WAL, pgoutput payload)."""
    if len(message) < XLOGDATA_HEADER:
        raise DecodeError(f"XLogData message of {len(message)} bytes is shorter than its header")
    start, wal_end, _ = _HEADER(message, 1)
    return start, wal_end, message[XLOGDATA_HEADER:]


def parse_keepalive(message: bytes) -> tuple[int, bool]:
    """``k`` message -> (server's end of WAL, whether it wants a reply now)."""
    if len(message) != 18:
        raise DecodeError(f"keepalive message of {len(message)} bytes, expected 18")
    wal_end, _, reply = _KEEPALIVE(message, 1)
    return wal_end, bool(reply)
