"""A search engine node (OpenSearch, Elasticsearch 7) embedded in a JVM from Maven jars.

Both engines start the same way: a small launcher (``services/java/<engine>/*.java``)
builds a node with the modules a distribution would load, from ``key=value`` settings given
on its command line. The node is single-node, listens on 127.0.0.1 (HTTP on the main port,
transport on another free one), keeps data and logs in ``DIR/<engine>/node``, and has disk
watermarks off so that a nearly full test disk does not turn indices read-only. It is ready
when ``/_cluster/health`` reports yellow or green.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any, ClassVar

from services import java
from services.java import Bundle
from services.server import Home, Options, Server

__all__ = ["SearchEngine", "http_json"]

START_TIMEOUT = 180.0


def http_json(url: str, timeout: float = 5.0) -> Any:
    """GET ``url`` and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def _healthy(url: str) -> bool:
    try:
        health = http_json(f"{url}/_cluster/health?wait_for_status=yellow&timeout=1s")
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
        home.spawn(
            [
                str(java.jdk() / "bin" / "java"), f"-Xms{heap}", f"-Xmx{heap}",
                "-XX:+ExitOnOutOfMemoryError", f"-Djava.io.tmpdir={node / 'tmp'}",
                f"-Dlog4j2.configurationFile={java.JAVA_DIR / 'log4j2.properties'}",
                "-cp", self.bundle.classpath(), self.main_class,
                *(f"{key}={value}" for key, value in settings.items()),
            ]
        )  # fmt: skip
        url = f"http://127.0.0.1:{http}"
        home.wait_until_ready(f"{self.name} on {url}", lambda: _healthy(url), timeout=START_TIMEOUT)
        version = str(http_json(url)["version"]["number"])
        return {
            f"{self.prefix}_URL": url,
            f"{self.prefix}_HOST": "127.0.0.1",
            f"{self.prefix}_PORT": str(http),
            f"{self.prefix}_VERSION": version,
        }
