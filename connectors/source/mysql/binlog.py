"""The binlog connection: mysql-replication's ``BinLogStreamReader``, opened at a
:class:`~connectors.source.mysql.checkpoint.Position` and reopened after a connection loss.

mysql-replication reconnects by itself when a read fails with "lost connection" (2013) or
"server has gone away" (2006), from the position it was *given at the start* when resuming
by GTID: every transaction since is sent again (upstream issue #367), and in file+position
mode it may resume between a TableMap and its row events. So that the stream never sees a
transaction twice or half, the connections it uses here report a lost connection as
:class:`ConnectionLostError`, which the library does not catch; :class:`BinlogStream` then
reopens the stream itself at the start of the transaction being read (the streaming side
leaves out the changes it has already seen: see ``skip`` in :mod:`checkpoint`), backing off
exponentially until ``reconnect_timeout`` has passed and then failing with
:class:`~hub.errors.RetriableError` (the hub restarts the source from its checkpoint).

The server is asked for heartbeat events (``@master_heartbeat_period``) so that a blocking
read returns at least every ``heartbeat_seconds`` even when nothing is written: the reader
notices a stop request and moves its checkpoint on an idle server.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
from collections.abc import Iterable
from typing import Any

import pymysql
from pymysql.connections import MAX_PACKET_LEN, Connection
from pymysql.protocol import MysqlPacket
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from connectors.source.mysql.checkpoint import Position
from connectors.source.mysql.reader import CachingStreamReader
from hub.backoff import Backoff
from hub.errors import FatalError, RetriableError
from hub.secrets import mask

__all__ = ["BinlogStream", "ConnectionLostError", "StreamStoppedError", "connection_error"]

EVENTS = (
    MariadbGtidEvent,
    GtidEvent,
    XidEvent,
    QueryEvent,
    RotateEvent,
    HeartbeatLogEvent,
    WriteRowsEvent,
    UpdateRowsEvent,
    DeleteRowsEvent,
)
_TRANSACTION_BOUND = re.compile(r"\s*(BEGIN|COMMIT|XA )", re.IGNORECASE)
_LOST = {2006, 2013}  # server has gone away, lost connection during query
_CANT_CONNECT = {2002, 2003}  # refused, unreachable
_ACCESS_DENIED = {1044, 1045, 1227}
_MAX_PACKET = MAX_PACKET_LEN  # a packet of this size is continued in the next
_UNSET = object()


class ConnectionLostError(Exception):
    """The binlog connection broke while reading (escapes mysql-replication on purpose)."""


class StreamStoppedError(Exception):
    """:meth:`BinlogStream.interrupt` was called."""


class _Connection(Connection):
    """A PyMySQL connection whose lost-connection errors mysql-replication does not retry."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # mysql-replication still names the control connection's database with PyMySQL's
        # deprecated ``db`` (a DeprecationWarning, attributed to whoever connects).
        if "db" in kwargs:
            db = kwargs.pop("db")
            kwargs.setdefault("database", db)
        super().__init__(*args, **kwargs)

    def _read_packet(self, packet_type: Any = MysqlPacket) -> Any:
        # PyMySQL's loop, with its checks, in fewer calls: it cost as much per binlog event
        # as decoding a small row. The first read (which sets the socket's timeout) is
        # PyMySQL's own.
        conn: Any = self  # PyMySQL's private attributes, which its stubs do not declare
        rfile = conn._rfile
        # (A PyMySQL without _current_timeout sets the timeout at every read: its own loop.)
        if getattr(conn, "_current_timeout", _UNSET) != conn._read_timeout or rfile is None:
            try:
                return super()._read_packet(packet_type)  # type: ignore[no-untyped-call]
            except pymysql.err.OperationalError as exc:
                if exc.args and exc.args[0] in _LOST:
                    raise ConnectionLostError(str(exc.args[-1])) from exc
                raise
        parts: list[bytes] | None = None
        while True:
            header = self._read_exactly(rfile, 4)
            size = header[0] | header[1] << 8 | header[2] << 16
            seq = header[3]
            if seq != conn._next_seq_id:
                conn._force_close()
                if seq == 0:  # MariaDB sends an error packet numbered 0 when shutting down
                    raise ConnectionLostError("Lost connection to MySQL server during query")
                raise pymysql.err.InternalError(
                    f"Packet sequence number wrong - got {seq} expected {conn._next_seq_id}"
                )
            conn._next_seq_id = (seq + 1) & 0xFF
            data = self._read_exactly(rfile, size)
            if size < _MAX_PACKET:
                if parts is not None:
                    parts.append(data)
                    data = b"".join(parts)
                break
            if parts is None:  # more than 16 MB: the rest follows in further packets
                parts = []
            parts.append(data)
        packet = packet_type(data, self.encoding)
        if data[:1] == b"\xff":  # an error packet, raised as PyMySQL raises it
            if conn._result is not None and conn._result.unbuffered_active is True:
                conn._result.unbuffered_active = False
            packet.raise_for_error()
        return packet

    def _read_exactly(self, rfile: Any, size: int) -> bytes:
        conn: Any = self
        try:
            data: bytes = rfile.read(size)
        except BaseException as exc:
            conn._force_close()
            if isinstance(exc, OSError):
                raise ConnectionLostError(
                    f"Lost connection to MySQL server during query ({exc})"
                ) from exc
            raise
        if len(data) < size:
            conn._force_close()
            raise ConnectionLostError("Lost connection to MySQL server during query")
        return data


def connection_error(exc: BaseException, doing: str) -> Exception:
    """A server error as the hub's error tree: what failed, and what to do."""
    code = exc.args[0] if isinstance(exc, pymysql.err.MySQLError) and exc.args else None
    text = mask(str(exc.args[-1] if exc.args else exc))
    if code in _ACCESS_DENIED:
        return FatalError(
            f"{doing}: access denied ({text}). Grant the capture user what it needs: "
            "GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'user'@'%' "
            "(MariaDB >= 10.5: BINLOG MONITOR instead of REPLICATION CLIENT); "
            "`changehub doctor` checks them all"
        )
    if code == 1236:  # ER_MASTER_FATAL_ERROR_READING_BINLOG: purged binlog, unknown GTID
        return FatalError(
            f"{doing}: the server cannot send the binlog from the checkpoint ({text}). The "
            "binlog it needs was probably purged (expire_logs_days / binlog_expire_logs_seconds),"
            " so changes are lost. Capture again from a snapshot: reset the source "
            "(changehub reset) or start it once with `snapshot: always`"
        )
    return RetriableError(f"{doing}: {text}")


class BinlogStream:
    """One replication connection reading row events from a position. Not thread-safe,
    except :meth:`interrupt`, which may come from any thread."""

    def __init__(
        self,
        settings: dict[str, Any],
        *,
        server_id: int,
        mariadb: bool,
        schemas: Iterable[str] | None,
        heartbeat_seconds: float,
        reconnect_timeout: float,
        logger: logging.Logger,
        column_name_cache: bool = False,
    ) -> None:
        self._settings = dict(settings)
        # Without FULL metadata mysql-replication asks the catalog for names at every
        # TableMap; the schema history replaces them anyway, so once per table is enough.
        self._column_name_cache = column_name_cache
        self._server_id = server_id
        self._mariadb = mariadb
        self._schemas = None if schemas is None else sorted(set(schemas))
        self._heartbeat = max(0.1, heartbeat_seconds)
        self._reconnect_timeout = reconnect_timeout
        self._logger = logger
        self._reader: CachingStreamReader | None = None
        self._stopped = False
        self.reconnects = 0

    def open(self, position: Position) -> None:
        self.close()
        if self._stopped:
            raise StreamStoppedError
        options: dict[str, Any] = {}
        if self._mariadb:
            # mysql-replication reads MariaDB from a GTID state only (file/pos are ignored);
            # an empty state means from the first binlog.
            options.update(is_mariadb=True, auto_position=position.gtid or None)
        else:
            options.update(resume_stream=True, log_file=position.file, log_pos=position.pos)
        self._reader = CachingStreamReader(
            connection_settings=dict(self._settings),
            server_id=self._server_id,
            blocking=True,
            only_events=list(EVENTS),
            only_schemas=self._schemas,
            slave_heartbeat=self._heartbeat,
            pymysql_wrapper=_Connection,
            enable_logging=False,
            use_column_name_cache=self._column_name_cache,
            **options,
        )

    def fetch(self) -> Any:
        """The next event (row, GTID, XID, query, rotate or heartbeat event).

        Raises :class:`ConnectionLostError` when the connection broke (reopen at the start
        of the current transaction), :class:`StreamStoppedError` after :meth:`interrupt`.
        """
        reader = self._reader
        if reader is None or self._stopped:
            raise StreamStoppedError
        try:
            event = reader.fetchone()
        except ConnectionLostError:
            if self._stopped:
                raise StreamStoppedError from None
            raise
        except (OSError, pymysql.err.InterfaceError) as exc:
            if self._stopped:
                raise StreamStoppedError from None
            raise ConnectionLostError(str(exc)) from exc
        except pymysql.err.OperationalError as exc:
            if self._stopped:
                raise StreamStoppedError from None
            if exc.args and exc.args[0] in _LOST | _CANT_CONNECT:
                raise ConnectionLostError(str(exc.args[-1])) from exc
            raise connection_error(exc, "reading the binlog") from None
        if event is None:  # EOF: the server ended the dump (shutdown)
            raise ConnectionLostError("the server ended the binlog dump")
        if type(event) is QueryEvent and not _TRANSACTION_BOUND.match(event.query):
            reader.forget()  # DDL, probably: TableMaps of the same bytes may mean new names
        return event

    @property
    def table_maps_reused(self) -> int:
        """TableMap events taken from the cache instead of parsed (this connection)."""
        return self._reader.table_map_hits if self._reader is not None else 0

    @property
    def file(self) -> str:
        return str(self._reader.log_file) if self._reader is not None else ""

    def reopen(self, position: Position) -> None:
        """Reconnect at ``position`` with exponential backoff, or fail after the timeout."""
        self.close()
        backoff = Backoff(initial=0.2, maximum=5.0)
        deadline = time.monotonic() + self._reconnect_timeout
        last: BaseException | None = None
        while not self._stopped:
            try:
                self.open(position)
                assert self._reader is not None
                # Connect now, so that a server still down is noticed here, not at fetch.
                self._reader._BinLogStreamReader__connect_to_stream()
                self.reconnects += 1
                self._logger.info("binlog: reconnected at %s", _where(position))
                return
            except (pymysql.err.MySQLError, OSError, ConnectionLostError) as exc:
                last = exc
                code = exc.args[0] if exc.args else None
                if code in _ACCESS_DENIED or code == 1236:
                    raise connection_error(exc, "reconnecting to the binlog") from None
            self.close()
            delay = backoff.next_delay()
            if time.monotonic() + delay > deadline:
                break
            self._logger.info("binlog: server unreachable (%s); retrying in %.1f s", last, delay)
            self._sleep(delay)
        if self._stopped:
            raise StreamStoppedError
        raise RetriableError(
            f"the binlog connection was lost and could not be re-established within "
            f"{self._reconnect_timeout:.0f} s: {mask(str(last))}"
        )

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopped and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))

    def interrupt(self) -> None:
        """Stop from another thread: wake a blocked read by shutting its socket down."""
        self._stopped = True
        reader = self._reader
        conn = getattr(reader, "_stream_connection", None) if reader is not None else None
        sock = getattr(conn, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                reader.close()


def _where(position: Position) -> str:
    return f"GTID {position.gtid}" if position.gtid else f"{position.file}:{position.pos}"
