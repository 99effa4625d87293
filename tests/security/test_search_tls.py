"""Search sinks over HTTPS, with the certificate checked (``verify_certs`` is on by default).

The engines here are assembled from Maven Central jars without a security plugin (the
OpenSearch security plugin and Elasticsearch's x-pack are not on Central), so they cannot
serve HTTPS themselves. The test puts a TLS-terminating proxy on loopback in front of the
real OpenSearch node, with a certificate from a throw-away CA (services/tls.py): what is
tested is the sink's side — it speaks TLS, verifies the chain and host name, and refuses a
certificate from another CA — which is what the sink's ``ca_certs``/``verify_certs`` do.
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from hub.config import load_pipeline
from hub.runtime import Hub
from services.tls import TlsFiles, make_tls_files
from tests.fixtures.services import OpenSearchServer
from tests.security.hubs import status, wait_for

pytestmark = pytest.mark.integration

ROWS = 50


class TlsProxy:
    """Accepts TLS on a loopback port and forwards the plain bytes to ``target``."""

    def __init__(self, tls: TlsFiles, target: tuple[str, int]) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(tls.cert, tls.key)
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []  # closed by stop(), whatever is still pumping

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            for s in self._open:
                with suppress(OSError):
                    s.close()

    def _track(self, s: socket.socket) -> socket.socket:
        with self._lock:
            self._open.append(s)
        return s

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(self._track(client),), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            secure = self._track(self._context.wrap_socket(client, server_side=True))
        except (ssl.SSLError, OSError):
            client.close()  # the client refused our certificate: that is its right
            return
        upstream = self._track(socket.create_connection(self._target))
        back = threading.Thread(target=self._pump, args=(upstream, secure), daemon=True)
        back.start()
        self._pump(secure, upstream)
        back.join()
        secure.close()
        upstream.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError, ValueError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with suppress(OSError, ValueError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_url(opensearch: OpenSearchServer, tls: TlsFiles) -> Iterator[str]:
    host, port = opensearch.url.removeprefix("http://").rsplit(":", 1)
    proxy = TlsProxy(tls, (host, int(port)))
    proxy.start()
    try:
        yield f"https://127.0.0.1:{proxy.port}"
    finally:
        proxy.stop()


@contextmanager
def hub_to_search(tmp_path: Path, url: str, ca: Path, index: str) -> Iterator[Hub]:
    db = tmp_path / "legacy.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)",
                         [(i, f"order {i}") for i in range(1, ROWS + 1)])
    (tmp_path / "p.yaml").write_text(f"""
log: {{path: {tmp_path / 'log'}}}
api: {{enabled: false}}
sources:
  - {{name: legacy, type: sql_poll, url: "sqlite:///{db}", table: orders, mode: incrementing,
     incrementing_column: id, interval: 200ms}}
sinks:
  - {{name: search, type: opensearch, topics: ["legacy.*"], hosts: ["{url}"], ca_certs: "{ca}",
     index: "{index}", flush_interval: 100ms, retry_timeout_s: 5, request_timeout_s: 5}}
""")
    hub = Hub(load_pipeline(tmp_path / "p.yaml", env={}))
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def test_the_search_sink_writes_over_https_verifying_the_certificate(
    opensearch: OpenSearchServer, https_url: str, tls: TlsFiles, tmp_path: Path
) -> None:
    index = f"tls-{uuid.uuid4().hex[:8]}"
    with hub_to_search(tmp_path, https_url, tls.ca, index) as hub:
        wait_for(lambda: status(hub, "search").records >= ROWS, "the documents", 120.0)
    httpx.post(f"{opensearch.url}/{index}/_refresh")
    count = httpx.get(f"{opensearch.url}/{index}/_count").json()["count"]
    assert count == ROWS


def test_the_search_sink_refuses_a_certificate_from_another_ca(
    https_url: str, tls: TlsFiles, tmp_path: Path
) -> None:
    index = f"tls-{uuid.uuid4().hex[:8]}"
    with hub_to_search(tmp_path, https_url, tls.other_ca, index) as hub:
        wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in (status(hub, "search").error or ""),
                 f"the sink's TLS error (now {status(hub, 'search')})", 120.0)
        assert status(hub, "search").records == 0
        assert status(hub, "search").state.value in ("RETRYING", "STARTING")
