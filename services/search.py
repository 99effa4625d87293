"""A search engine node (OpenSearch, Elasticsearch 7) embedded in a JVM from Maven jars.

Both engines start the same way: a small launcher (``services/java/<engine>/*.java``)
builds a node with the modules a distribution would load, from ``key=value`` settings given
on its command line. The node is single-node, listens on 127.0.0.1 (HTTP on the main port,
transport on another free one), keeps data and logs in ``DIR/<engine>/node``, and has disk
watermarks off so that a nearly full test disk does not turn indices read-only. It is ready
when ``/_cluster/health`` reports yellow or green.

``--tls`` (OpenSearch only): the node's own HTTP layer serves HTTPS with a server certificate
from the throw-away CA of :mod:`services.tls`, through the ``netty4-secure`` transport core
OpenSearch builds from a plugin's SSL engine (see ``OpenSearchNode.java``); the facts then
give an ``https://`` URL and ``TLS_CA``/``TLS_OTHER_CA``. Elasticsearch 7.17 has no such hook
in its open jars (HTTPS there is x-pack security, which is not on Maven Central).
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from typing import Any, ClassVar

from services import java
from services.java import Bundle
from services.server import Home, Options, Server
from services.tls import make_tls_files, pkcs12_keystore

__all__ = ["SearchEngine", "http_json"]

START_TIMEOUT = 180.0
#: Of the throw-away PKCS#12 keystore of --tls (services/tls.py), readable only by its owner.
KEYSTORE_PASSWORD = "changehub-test"


def http_json(url: str, timeout: float = 5.0, context: ssl.SSLContext | None = None) -> Any:
    """GET ``url`` and decode its JSON body (``context``: the TLS trust for https URLs)."""
    with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
        return json.load(response)


def _healthy(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        health = http_json(f"{url}/_cluster/health?wait_for_status=yellow&timeout=1s",
                           context=context)
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return health.get("status") in ("green", "yellow")


class SearchEngine(Server):
    main_port = "http"
    apt_packages: ClassVar[tuple[str, ...]] = java.APT_PACKAGES
    stop_timeout: ClassVar[float] = 60.0
    bundle: ClassVar[Bundle]
    main_class: ClassVar[str]
    #: Prefix of the printed facts: ``<PREFIX>_URL``, ``<PREFIX>_VERSION`` …
    prefix: ClassVar[str]
    #: Heap of the JVM; ``CHANGEHUB_<PREFIX>_HEAP`` overrides it (e.g. 1g for benchmarks).
    heap: ClassVar[str] = "512m"

    def missing(self) -> list[str]:
        return self.bundle.missing()

    def install(self) -> None:
        self.bundle.install()

    def start(self, home: Home, options: Options) -> dict[str, str]:
        http, transport = home.port("http"), home.port("transport")
        node = home.path / "node"
        for sub in ("data", "logs", "tmp"):
            (node / sub).mkdir(parents=True, exist_ok=True)
        settings = {
            "path.home": str(node),
            "path.data": str(node / "data"),
            "path.logs": str(node / "logs"),
            "cluster.name": f"changehub-{self.name}",
            "node.name": "node-1",
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": str(http),
            "transport.port": str(transport),
            "http.type": "netty4",
            "transport.type": "netty4",
            "cluster.routing.allocation.disk.threshold_enabled": "false",
        }
        heap = os.environ.get(f"CHANGEHUB_{self.prefix}_HEAP", self.heap)
        tls_props: list[str] = []
        tls_facts: dict[str, str] = {}
        context: ssl.SSLContext | None = None
        scheme = "http"
        if options.tls:
            tls = make_tls_files(home.path / "tls")
            keystore = pkcs12_keystore(tls, KEYSTORE_PASSWORD)
            settings["http.type"] = "netty4-secure"
            tls_props = [f"-Dchangehub.http.tls.keystore={keystore}",
                         f"-Dchangehub.http.tls.password={KEYSTORE_PASSWORD}"]
            tls_facts = tls.facts()
            # The readiness check verifies the chain and host name, as a client would.
            context = ssl.create_default_context(cafile=str(tls.ca))
            scheme = "https"
        home.spawn(
            [
                str(java.jdk() / "bin" / "java"), f"-Xms{heap}", f"-Xmx{heap}",
                "-XX:+ExitOnOutOfMemoryError", f"-Djava.io.tmpdir={node / 'tmp'}",
                f"-Dlog4j2.configurationFile={java.JAVA_DIR / 'log4j2.properties'}",
                *tls_props,
                "-cp", self.bundle.classpath(), self.main_class,
                *(f"{key}={value}" for key, value in settings.items()),
            ]
        )  # fmt: skip
        url = f"{scheme}://127.0.0.1:{http}"
        home.wait_until_ready(f"{self.name} on {url}", lambda: _healthy(url, context),
                              timeout=START_TIMEOUT)
        version = str(http_json(url, context=context)["version"]["number"])
        return {
            f"{self.prefix}_URL": url,
            f"{self.prefix}_HOST": "127.0.0.1",
            f"{self.prefix}_PORT": str(http),
            f"{self.prefix}_VERSION": version,
            **tls_facts,
        }
