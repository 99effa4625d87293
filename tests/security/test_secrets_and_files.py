"""Secrets never leak, and what the hub writes is private to its account.

One real ``changehub run`` (a subprocess, as a user starts it, logging at DEBUG) with
passwords everywhere: a working Postgres source, a Postgres source with a wrong password
(authentication fails), a MariaDB source and a search sink whose servers are not there
(connection errors quoting hosts and users), DuckDB and file sinks, and the API behind a
token. While it runs, every API answer (connectors, status, topics, offsets, /metrics, the
status page) is fetched, also a few unauthorised ones. Then everything the run produced —
stdout, stderr, API bodies, every file under the run's directory (the log's data files, its
offsets and checkpoints, the warehouse, the exports, the pipeline file excepted) — is
searched for every password and the token: none may appear, plain, URL-quoted or base64'd.
Every file and directory the hub created must be owner-only (0600 / 0700).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest

from tests.fixtures.services import PostgresServer
from tests.integration.postgres.conftest import _database
from tests.integration.postgres.pipeline import Database

pytestmark = pytest.mark.integration

ROWS = 300
TOKEN = "tok-Q8v3-api-secret-51"
WRONG_PG_PASSWORD = "wrong-pw-Z71x-secret"
MYSQL_PASSWORD = "my-pw-K27q-secret"
SEARCH_PASSWORD = "search-pw-H55d-secret"

PIPELINE = """
log: {{path: ./log}}
api: {{listen: "127.0.0.1:{api_port}", token: "${{CHANGEHUB_TOKEN}}"}}
sources:
  - {{name: shop, type: postgres, dsn: "${{PG_DSN}}", tables: [public.items],
     heartbeat_interval: 500ms}}
  - {{name: badpass, type: postgres, tables: [public.items],
     dsn: "postgresql://{user}:${{WRONG_PG_PASSWORD}}@127.0.0.1:{pg_port}/{db}"}}
  - {{name: legacy, type: mariadb, url: "mysql://app:${{MYSQL_PASSWORD}}@127.0.0.1:{closed}/shop",
     databases: [shop], connect_timeout: 1s, reconnect_timeout: 0s}}
sinks:
  - {{name: warehouse, type: sql, topics: ["shop.*"], url: "duckdb:///./warehouse.duckdb"}}
  - {{name: files, type: batch, topics: ["shop.*"], path: ./exports}}
  - {{name: search, type: opensearch, topics: ["shop.*"], hosts: ["http://127.0.0.1:{closed}"],
     username: admin, password: "${{SEARCH_PASSWORD}}", request_timeout_s: 1,
     retry_timeout_s: 2}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Run:
    """What one hub run produced."""

    root: Path
    outputs: dict[str, str]  # name -> text (stdout, stderr, API answers)
    passwords: list[str]
    started_at: float


@pytest.fixture(scope="module")
def pg_db(postgres: PostgresServer) -> Iterator[Database]:
    yield from _database(postgres, postgres.dsn)


@pytest.fixture(scope="module")
def run(postgres: PostgresServer, pg_db: Database,
        tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("secrets")
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text, secret_col text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g, 'data' "
                     "FROM generate_series(1, %s) g", (ROWS,))
    api_port = _free_port()
    (root / "pipeline.yaml").write_text(PIPELINE.format(
        api_port=api_port, user=postgres.user, pg_port=postgres.port, db=pg_db.name,
        closed=_free_port(),
    ))
    env = {
        **os.environ, "PG_DSN": pg_db.dsn, "CHANGEHUB_TOKEN": TOKEN,
        "WRONG_PG_PASSWORD": WRONG_PG_PASSWORD, "MYSQL_PASSWORD": MYSQL_PASSWORD,
        "SEARCH_PASSWORD": SEARCH_PASSWORD,
    }
    started_at = time.time()
    hub = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "--log-level", "DEBUG", "run", "pipeline.yaml"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{api_port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    outputs: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 120
        while True:
            assert hub.poll() is None, f"the hub exited early: {hub.communicate()}"
            try:
                states = {c["name"]: c for c in httpx.get(f"{url}/connectors", headers=auth,
                                                          timeout=5).json()}
            except httpx.HTTPError:
                states = {}
            done = (
                states.get("warehouse", {}).get("records", 0) >= ROWS
                and states.get("badpass", {}).get("error")
                and states.get("legacy", {}).get("error")
                and states.get("search", {}).get("error")
            )
            if done:
                break
            assert time.monotonic() < deadline, f"timed out; last states: {states}"
            time.sleep(0.2)
        paths = ["/connectors", "/status", "/topics", "/metrics", "/", "/openapi.json",
                 *[f"/connectors/{n}" for n in states],
                 *[f"/connectors/{n}/offsets" for n in ("warehouse", "files", "search")]]
        for path in paths:
            answer = httpx.get(url + path, headers=auth, timeout=10)
            outputs[f"GET {path}"] = answer.text
        for path in ("/connectors", "/metrics"):
            for headers in ({}, {"Authorization": "Bearer wrong-token"}):
                outputs[f"GET {path} {headers}"] = httpx.get(url + path, headers=headers).text
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            out, err = hub.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            hub.kill()
            out, err = hub.communicate()
    outputs["stdout"], outputs["stderr"] = out, err
    return Run(root, outputs, [postgres.password, WRONG_PG_PASSWORD, MYSQL_PASSWORD,
                               SEARCH_PASSWORD, TOKEN], started_at)


def _forms(secret: str) -> list[bytes]:
    """The spellings a leak could take: plain, URL-quoted, base64 (as in Basic auth)."""
    return [
        secret.encode(), quote(secret, safe="").encode(),
        base64.b64encode(secret.encode()), base64.b64encode(f"admin:{secret}".encode()),
    ]


def _written(run: Run) -> list[Path]:
    return [p for p in run.root.rglob("*") if p.name != "pipeline.yaml"]


def test_the_run_did_what_it_was_set_up_to_do(run: Run) -> None:
    status = run.outputs["GET /connectors"]
    assert "password authentication failed" in status  # badpass reached the server
    assert any(p.suffix == ".log" for p in (run.root / "log").rglob("*"))
    assert (run.root / "warehouse.duckdb").exists()
    assert "changehub_" in run.outputs["GET /metrics"]
    assert run.outputs["GET /connectors {}"].count("token") >= 1  # refused, asks for it


def test_no_password_or_token_in_output_api_answers_or_files(run: Run) -> None:
    leaks = []
    for name, text in run.outputs.items():
        for secret in run.passwords:
            for form in _forms(secret):
                if form in text.encode():
                    leaks.append(f"{name}: {form!r}")
    files = [p for p in _written(run) if p.is_file()]
    assert len(files) > 10, files
    for path in files:
        data = path.read_bytes()
        for secret in run.passwords:
            for form in _forms(secret):
                if form in data:
                    leaks.append(f"{path.relative_to(run.root)}: {form!r}")
    assert not leaks, "\n".join(leaks)


def test_every_file_and_directory_the_hub_created_is_owner_only(run: Run) -> None:
    loose = []
    for path in _written(run):
        if path.stat().st_mtime < run.started_at - 1:
            continue  # made by the test, before the hub started
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            loose.append(f"{path.relative_to(run.root)}: {oct(mode)}")
    assert not loose, "\n".join(loose)
