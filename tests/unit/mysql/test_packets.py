"""The binlog connection's packet reading (:class:`connectors.source.mysql.binlog._Connection`)
against PyMySQL's own, on the same bytes: the same packets, the same errors."""

from __future__ import annotations

import io
import struct
from typing import Any

import pymysql
import pytest
from pymysql.connections import Connection

from connectors.source.mysql.binlog import ConnectionLostError, _Connection


def framed(payload: bytes, seq: int) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def connection(cls: type[Any], data: bytes) -> Any:
    """A connection object reading ``data`` as its socket's bytes (no server)."""
    conn = cls.__new__(cls)
    conn._rfile = io.BytesIO(data)
    conn._sock = None
    conn._current_timeout = conn._read_timeout = None
    conn._next_seq_id = 0
    conn.encoding = "utf8"
    conn._result = None
    conn.closed_by_force = False

    def force_close() -> None:
        conn.closed_by_force = True

    conn._force_close = force_close
    return conn


def read_all(cls: type[Any], data: bytes, count: int) -> list[bytes]:
    conn = connection(cls, data)
    return [conn._read_packet()._data for _ in range(count)]


def test_packets_in_sequence_read_as_pymysql_reads_them() -> None:
    payloads = [b"\x00" + bytes(range(i, i + 40)) for i in range(5)] + [b"\x00"]
    data = b"".join(framed(p, i) for i, p in enumerate(payloads))
    assert read_all(_Connection, data, 6) == read_all(Connection, data, 6) == payloads


def test_a_packet_of_16_mb_or_more_is_joined_with_the_next() -> None:
    big = b"\x00" + b"x" * (0xFFFFFF - 1)
    data = framed(big, 0) + framed(b"tail", 1) + framed(b"\x00next", 2)
    ours = read_all(_Connection, data, 2)
    assert ours == read_all(Connection, data, 2)
    assert ours[0] == big + b"tail" and ours[1] == b"\x00next"


def test_an_error_packet_raises_pymysqls_error() -> None:
    error = b"\xff" + struct.pack("<H", 1236) + b"#HY000" + b"Could not find first log file"
    for cls in (_Connection, Connection):
        with pytest.raises(pymysql.err.OperationalError) as raised:
            connection(cls, framed(error, 0))._read_packet()
        assert raised.value.args[0] == 1236


def test_a_short_read_is_a_lost_connection_and_closes_the_socket() -> None:
    for data in (b"\x05\x00", framed(b"\x00abcdef", 0)[:-2]):
        conn = connection(_Connection, data)
        with pytest.raises(ConnectionLostError):
            conn._read_packet()
        assert conn.closed_by_force


def test_a_packet_out_of_sequence_is_refused() -> None:
    conn = connection(_Connection, framed(b"\x00a", 3))
    with pytest.raises(pymysql.err.InternalError, match="got 3 expected 0"):
        conn._read_packet()
    # MariaDB numbers the error packet it sends when shutting down 0: a lost connection.
    conn = connection(_Connection, framed(b"\x00a", 0) + framed(b"\x00b", 0))
    conn._read_packet()
    with pytest.raises(ConnectionLostError):
        conn._read_packet()
