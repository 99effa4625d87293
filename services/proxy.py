"""A TCP proxy on loopback that a test can cut and restore, to put a network fault between
a client (the hub) and a server (Postgres, a search engine) without touching either.

    proxy = TcpProxy("127.0.0.1", 5432).start()   # listens on 127.0.0.1:<free port>
    ...point the client at proxy.port...
    proxy.cut("stall")     # a partition: bytes stop flowing both ways, nothing is refused
    proxy.restore()        # the stalled bytes flow on, as after a healed partition
    proxy.cut("reset")     # every connection gets a RST, new ones are refused until restore
    proxy.stop()

"stall" is the faithful model of a pulled cable or dropped packets: the proxy stops reading,
so the kernel buffers fill and the peers see silence (TCP retransmits, it never says
"closed"); only the peers' own timeouts and keepalives notice. "reset" is a firewall that
rejects: every connection breaks at once and reconnects fail fast. Standard library only,
like the rest of services/. A connection one peer closes is closed on the other side too.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from typing import Literal

__all__ = ["CutMode", "TcpProxy"]

CutMode = Literal["stall", "reset"]
CHUNK = 65536
# How often a pump looks at the cut state while its socket is quiet (a select timeout, so a
# stalled pump reacts to restore() and stop() without a busy loop).
POLL_S = 0.05


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a rejecting firewall or a dead peer's kernel would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One proxied connection: a pump thread per direction."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.closed = threading.Event()

    def start(self) -> None:
        for src, dst in ((self.client, self.server), (self.server, self.client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True,
                             name=f"proxy-{self.proxy.port}").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self.closed.is_set():
                # While stalled, leave the bytes in the kernel: the sender's window fills and
                # it blocks, exactly as behind a partition.
                if self.proxy.stalled:
                    self.closed.wait(POLL_S)
                    continue
                readable, _, _ = select.select([src], [], [], POLL_S)
                if not readable or self.proxy.stalled:
                    continue
                data = src.recv(CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except (OSError, ValueError):  # ValueError: the other pump closed the socket (fd -1)
            pass
        self.close()

    def close(self, *, rst: bool = False) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.server):
            if rst:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
        self.proxy._forget(self)


class TcpProxy:
    """Forward 127.0.0.1:``port`` (0: a free one) to ``target_host``:``target_port``."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", port), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        self.stalled = False
        self.refusing = False
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.connections = 0  # accepted so far: lets a test see that a client reconnected

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept_loop, daemon=True,
                         name=f"proxy-accept-{self.port}").start()
        return self

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                readable, _, _ = select.select([self._listener], [], [], POLL_S)
            except (OSError, ValueError):  # stop() closed the listener
                return
            if not readable:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            if self.refusing:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                _reset(client)  # the server is down: the client sees a refused connection
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client, server)
            with self._lock:
                self._links.add(link)
                self.connections += 1
            link.start()

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    def cut(self, mode: CutMode = "stall") -> None:
        """Break the path: ``stall`` silences it, ``reset`` kills and refuses connections."""
        if mode == "stall":
            self.stalled = True
            return
        self.refusing = True
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close(rst=True)

    def restore(self) -> None:
        """Heal the path: stalled bytes flow again and new connections are let through."""
        self.refusing = False
        self.stalled = False

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()
