"""services/proxy.py against a real echo server on loopback: bytes pass, a stall holds them
(and delivers them after restore), a reset breaks connections and refuses new ones."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from services.proxy import TcpProxy
from tests.reliability.rig import wait_until


@pytest.fixture
def echo() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the proxy's resets end it
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


@pytest.fixture
def proxy(echo: int) -> Iterator[TcpProxy]:
    p = TcpProxy("127.0.0.1", echo).start()
    yield p
    p.stop()


def connect(proxy: TcpProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    return sock


def test_bytes_pass_through(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert sock.recv(100) == b"hello"


def test_a_stall_holds_the_bytes_and_restore_delivers_them(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"one")
        assert sock.recv(100) == b"one"
        proxy.cut("stall")
        sock.sendall(b"two")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)  # silence, not a close: a partition
        proxy.restore()
        sock.settimeout(5)
        assert sock.recv(100) == b"two"


def test_a_reset_breaks_connections_and_refuses_new_ones(proxy: TcpProxy) -> None:
    sock = connect(proxy)
    sock.sendall(b"x")
    assert sock.recv(10) == b"x"
    proxy.cut("reset")
    wait_until(lambda: proxy.open_connections() == 0, "the connection to be reset", 5)
    with pytest.raises(OSError):
        sock.sendall(b"y")
        if sock.recv(10) == b"":
            raise ConnectionResetError("closed")
    sock.close()
    with pytest.raises(OSError), connect(proxy) as refused:  # reset at connect or first read
        if refused.recv(10) == b"":
            raise ConnectionResetError("closed")
    proxy.restore()
    with connect(proxy) as again:
        again.sendall(b"back")
        assert again.recv(100) == b"back"
