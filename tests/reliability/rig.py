"""The test rig of the reliability suite: its own PostgreSQL and OpenSearch (started with
``services/run`` in a private directory, so scenarios may stop, restart and break them),
a TCP proxy in front of each (services/proxy.py, for network cuts), and the hub as a real
``changehub run`` subprocess on a pipeline Postgres -> embedded log -> OpenSearch.

A scenario gets a fresh ``Pipeline`` (new table name, index, slot, log directory), so runs do
not see each other's data while sharing the servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import opensearchpy
import psycopg
from psycopg.conninfo import make_conninfo

from services.proxy import TcpProxy
from tests.fixtures.services import (
    OpenSearchServer,
    PostgresServer,
    RunningService,
    run_services,
)

ROOT = Path(__file__).resolve().parents[2]
CHANGEHUB = [sys.executable, "-m", "hub.cli"]


class ScenarioError(AssertionError):
    """A scenario could not reach its end state (the hub died, a deadline passed)."""


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float,
               poll_s: float = 0.1) -> None:
    """Poll ``condition`` until it holds, or fail naming ``what`` after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise ScenarioError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(poll_s)  # polling a condition with a deadline, not a synchronisation


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Servers:
    """Private servers of one rig. ``restart_*`` keeps the data and the port."""

    root: Path
    postgres: PostgresServer
    opensearch: OpenSearchServer
    pg_proxy: TcpProxy
    engine_proxy: TcpProxy

    @classmethod
    def start(cls) -> Servers:
        # Not pytest's tmp_path: postgres runs as its own account and must reach the data.
        root = Path(tempfile.mkdtemp(prefix="changehub-reliability-"))
        root.chmod(0o755)
        pg = PostgresServer.from_facts(root, run_services("up", "postgres", "--dir", str(root)))
        try:
            engine = OpenSearchServer.from_facts(
                root, run_services("up", "opensearch", "--dir", str(root)))
        except BaseException:
            pg.stop()
            raise
        return cls(root, pg, engine, TcpProxy(pg.host, pg.port).start(),
                   TcpProxy("127.0.0.1", _port(engine)).start())

    def stop(self) -> None:
        self.pg_proxy.stop()
        self.engine_proxy.stop()
        for service in (self.opensearch, self.postgres):
            with contextlib.suppress(Exception):
                service.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def superuser(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.postgres.superuser_dsn, autocommit=True) as su:
            cur = su.execute(query, params)
            return cur.fetchall() if cur.description else []

    def set_wal_sender_timeout(self, value: str) -> None:
        """How long Postgres waits for a silent replication client before it drops it."""
        self.superuser(f"ALTER SYSTEM SET wal_sender_timeout = '{value}'")
        self.superuser("SELECT pg_reload_conf()")

    def restart_postgres(self, down_s: float = 0.0) -> None:
        self.postgres.stop()
        time.sleep(down_s)  # the outage itself: how long the server stays down
        self.postgres = _same_port(self.postgres.start(), self.postgres)

    def stop_engine(self) -> None:
        self.opensearch.stop()

    def start_engine(self) -> None:
        self.opensearch = _same_port(self.opensearch.start(), self.opensearch)


def _port(service: RunningService) -> int:
    key = {"postgres": "PG_PORT", "opensearch": "OPENSEARCH_PORT"}[service.name]
    return int(service.facts[key])


def _same_port(new: RunningService, old: RunningService) -> Any:
    # The proxies forward to the old port: a restarted server must keep it.
    if _port(new) != _port(old):
        raise ScenarioError(f"{new.name} came back on another port "
                              f"({_port(new)} != {_port(old)})")
    return new


PIPELINE = """\
log:
  backend: embedded
  path: {log_dir}
  segment_bytes: {segment_bytes}
api: {api}
sources:
  - name: {source}
    type: postgres
    dsn: {dsn}
    tables: [public.{table}]
    slot_name: {slot}
    publication: {slot}
    snapshot: initial
    heartbeat_interval: 1s
    status_interval: 1s
sinks:
  - name: search
    type: opensearch
    topics: ["{source}.*"]
    hosts: ["{engine_url}"]
    index: "{index}"
    flush_interval: 200ms
    request_timeout_s: {request_timeout_s}
    retry_timeout_s: {retry_timeout_s}
"""

SCHEMA = """
CREATE TABLE {table} (
    id bigint PRIMARY KEY, name text NOT NULL, qty int, price numeric(12, 2),
    note text, meta jsonb, ts timestamptz NOT NULL DEFAULT now());
"""


@dataclass
class Pipeline:
    """One scenario's table, index, slot, log directory and hub process."""

    servers: Servers
    workdir: Path
    name: str
    log_dir: Path
    via_proxy: bool = True
    request_timeout_s: float = 30.0  # the sink's defaults
    retry_timeout_s: float = 60.0
    api_port: int | None = None
    segment_bytes: str = "128MB"
    hub: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _conn: psycopg.Connection[Any] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, servers: Servers, workdir: Path, *, log_dir: Path | None = None,
               **options: Any) -> Pipeline:
        name = f"rel_{uuid.uuid4().hex[:8]}"
        workdir.mkdir(parents=True, exist_ok=True)
        pipeline = cls(servers, workdir, name, log_dir or workdir / "log", **options)
        pipeline.execute(SCHEMA.format(table=name))
        pipeline.write_config()
        return pipeline

    # -- the source database -------------------------------------------------------------
    @property
    def table(self) -> str:
        return self.name

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()  # a broken one too, or it warns when collected
            self._conn = psycopg.connect(self.servers.postgres.dsn, autocommit=True)
        return self._conn

    def execute(self, query: str, params: Any = None) -> None:
        self.rows(query, params)

    def rows(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        # A scenario may have restarted the server under this connection: one retry on a
        # new one (the statements of the rig are single autocommit statements).
        for attempt in (1, 2):
            try:
                cur = self.conn.execute(query.encode(), params)
                return cur.fetchall() if cur.description else []
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
                if self._conn is not None:
                    self._conn.close()
        raise AssertionError("unreachable")

    # -- the hub -------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.workdir / "pipeline.yaml"

    @property
    def hub_log(self) -> Path:
        return self.workdir / "hub.log"

    def write_config(self) -> None:
        pg, engine = self.servers.postgres, self.servers.opensearch
        if self.via_proxy:
            dsn = make_conninfo(pg.dsn, host="127.0.0.1", port=str(self.servers.pg_proxy.port))
            engine_url = f"http://{self.servers.engine_proxy.address}"
        else:
            dsn, engine_url = pg.dsn, engine.url
        api = ("{enabled: false}" if self.api_port is None
               else f"{{enabled: true, listen: '127.0.0.1:{self.api_port}'}}")
        self.config.write_text(PIPELINE.format(
            log_dir=self.log_dir, segment_bytes=self.segment_bytes, api=api,
            source=self.name, dsn=dsn, table=self.table, slot=self.name,
            engine_url=engine_url, index=self.name,
            request_timeout_s=self.request_timeout_s, retry_timeout_s=self.retry_timeout_s))

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT)}

    def start_hub(self) -> subprocess.Popen[bytes]:
        """``changehub run`` in the background; returns once its sink has started."""
        assert self.hub is None or self.hub.poll() is not None, "the hub is already running"
        with open(self.hub_log, "ab") as out:  # the child keeps its own copy of the fd
            out.write(f"=== start {self.starts + 1} at {time.time():.3f}\n".encode())
            out.flush()
            self.hub = subprocess.Popen([*CHANGEHUB, "run", str(self.config)],
                                        cwd=self.workdir, env=self.env(),
                                        stdout=subprocess.DEVNULL, stderr=out)
        self.starts += 1
        hub = self.hub
        wait_until(lambda: self.log_count("sink search started") >= self.starts
                   or hub.poll() is not None, "the hub's sink to start", 120)
        if hub.poll() is not None:
            raise ScenarioError(f"the hub exited with {hub.returncode} while starting:\n"
                                  f"{self.log_tail()}")
        return hub

    def alive(self) -> bool:
        return self.hub is not None and self.hub.poll() is None

    def log_count(self, text: str) -> int:
        return self.hub_log.read_text(errors="replace").count(text)

    def log_tail(self, chars: int = 3000) -> str:
        return self.hub_log.read_text(errors="replace")[-chars:] if self.hub_log.exists() else ""

    def signal_hub(self, sig: signal.Signals) -> None:
        assert self.hub is not None
        self.hub.send_signal(sig)

    def kill_hub(self) -> None:
        assert self.hub is not None
        self.hub.kill()
        self.hub.wait(30)

    def stop_hub(self, deadline_s: float = 60) -> int:
        """SIGTERM and wait: a clean stop must exit 0 within the deadline."""
        if self.hub is None or self.hub.poll() is not None:
            return self.hub.returncode if self.hub is not None else 0
        self.hub.send_signal(signal.SIGCONT)  # in case a scenario left it frozen
        self.hub.send_signal(signal.SIGTERM)
        try:
            return self.hub.wait(deadline_s)
        except subprocess.TimeoutExpired:
            self.hub.kill()
            self.hub.wait(30)
            raise ScenarioError(f"the hub did not stop within {deadline_s:.0f} s of SIGTERM:"
                                  f"\n{self.log_tail()}") from None

    def assert_alive(self) -> None:
        if self.hub is None or self.hub.poll() is not None:
            code = None if self.hub is None else self.hub.returncode
            raise ScenarioError(f"the hub exited (code {code}):\n{self.log_tail()}")

    def api(self, method: str, path: str) -> Any:
        """Call the running hub's REST API (the pipeline needs ``api_port``)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}",
                                         method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"null")

    def restart_failed_connectors(self) -> list[str]:
        """What an operator does once the cause is fixed: restart every FAILED connector."""
        failed = [c["name"] for c in self.api("GET", "/connectors") if c["state"] == "FAILED"]
        for name in failed:
            self.api("POST", f"/connectors/{name}/restart")
        return failed

    # -- the target ----------------------------------------------------------------------
    def engine(self) -> opensearchpy.OpenSearch:
        return opensearchpy.OpenSearch([self.servers.opensearch.url], timeout=60)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_hub()
        with contextlib.suppress(Exception):
            self.execute(f"DROP TABLE IF EXISTS {self.table}")
        if self._conn is not None:
            self._conn.close()
        with contextlib.suppress(Exception):
            self.servers.superuser(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active", (self.name,))
        with contextlib.suppress(Exception):
            client = self.engine()
            client.indices.delete(index=f"{self.name}*", ignore_unavailable=True)
            client.close()
