"""A real hub with its API on a free loopback port, for the API tests.

The pipeline needs no server: a SQLite table polled into the embedded log, out to JSON
Lines files (batch) and a SQLite warehouse (sql). Two connectors are broken on purpose: a
source polling a table that does not exist (FAILED), and an OpenSearch sink pointed at a
port where nothing listens, with a password (RETRYING, with an error whose text must never
show the password).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hub.api.server import ApiServer, start_api
from hub.config import ApiConfig, load_pipeline
from hub.runtime import Hub

TOKEN = "t0ken-for-the-api-tests"
PASSWORD = "pw-never-shown-42"

PIPELINE = f"""
log: {{backend: embedded, path: ./log}}
api: {{listen: "127.0.0.1:0", token: "{TOKEN}"}}
sources:
  - name: legacy
    type: sql_poll
    url: sqlite:///./legacy.db
    table: orders
    mode: incrementing
    incrementing_column: id
    interval: 100ms
  - name: ghost
    type: sql_poll
    url: sqlite:///./legacy.db
    table: missing
    mode: incrementing
    incrementing_column: id
sinks:
  - name: files
    type: batch
    topics: ["legacy.*"]
    format: jsonl
    path: ./exports
    flush_interval: 100ms
  - name: warehouse
    type: sql
    topics: ["legacy.*"]
    url: sqlite:///./warehouse.db
    table: "{{table}}"
    flush_interval: 100ms
  - name: search
    type: opensearch
    topics: ["legacy.*"]
    hosts: ["http://127.0.0.1:9"]
    username: admin
    password: "{PASSWORD}"
    request_timeout_s: 1
"""


@dataclass
class RunningHub:
    hub: Hub
    api: ApiServer
    db: Path

    @property
    def url(self) -> str:
        return self.api.url

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def insert(self, first: int, count: int) -> None:
        con = sqlite3.connect(self.db)
        with con:
            con.executemany("INSERT INTO orders (id, item) VALUES (?, ?)",
                            [(i, f"item {i}") for i in range(first, first + count)])
        con.close()


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def running_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningHub]:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "legacy.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)")
    con.commit()
    con.close()
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    config = load_pipeline(tmp_path / "pipeline.yaml")
    hub = Hub(config)
    hub.start()
    api = start_api(hub, config.api)
    running = RunningHub(hub, api, db)
    try:
        yield running
    finally:
        api.stop()
        hub.stop()


def open_api(hub: Hub, listen: str, token: str | None) -> ApiServer:
    secret = SecretStr(token) if token is not None else None
    return start_api(hub, ApiConfig(listen=listen, token=secret))
