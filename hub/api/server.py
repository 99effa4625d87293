"""Serving the API from a running hub: uvicorn in a background thread, stopped cleanly.

The socket is bound here, before the thread starts, so that a busy port is reported to the
caller at once (:class:`OSError`) and port 0 yields the real port in :attr:`ApiServer.url`.

The token rule is checked again right before binding, not only when the config is validated:
an :class:`ApiConfig` built in code (``model_construct``, a copy with a new ``listen``) must
not open an unauthenticated API to the network either.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import TYPE_CHECKING

import uvicorn

from hub.api.app import create_app
from hub.config import ApiConfig, is_loopback
from hub.errors import UsageError

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["ApiServer", "start_api"]

log = logging.getLogger("changehub.api")

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class _Server(uvicorn.Server):
    """uvicorn's server, telling another thread when it listens (or gave up)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


class ApiServer:
    """A uvicorn server on its own thread. :meth:`stop` is idempotent."""

    def __init__(self, server: _Server, sock: socket.socket) -> None:
        self._server = server
        self._sock = sock
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        self._thread = threading.Thread(target=self._run, name="api", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except Exception:
            log.exception("the API server stopped with an error")
        finally:
            self._server.ready.set()

    def start(self) -> None:
        self._thread.start()
        self._server.ready.wait(START_TIMEOUT_S)
        if not self._server.started:
            self.stop()
            raise OSError(f"the API server did not start on {self.url}")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(STOP_TIMEOUT_S)
        self._sock.close()


def start_api(hub: Hub, config: ApiConfig) -> ApiServer:
    """Bind ``config.listen`` and serve ``hub`` there; raises :class:`OSError` if the
    address is taken or cannot be bound."""
    token = config.token.get_secret_value() if config.token is not None else None
    if not token and not is_loopback(config.host):
        raise UsageError(
            f"the API would listen on {config.listen} without a token: set api.token, "
            "or listen on 127.0.0.1"
        )
    app = create_app(hub, token)
    sock = _bind(config.host, config.port)
    server = _Server(uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    ))
    api = ApiServer(server, sock)
    api.start()
    return api


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock
