"""``changehub snapshot`` end to end: a real hub (``changehub run``) with a real Postgres
source reads a table again when asked from another process; no hub, an unknown source or
table, and a source type without incremental snapshots each fail with their exit code."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.fixtures.services import PostgresServer
from tests.integration.api.conftest import wait_for
from tests.integration.api.test_cli import RunningCli, cli, free_port
from tests.integration.postgres.conftest import _database
from tests.integration.postgres.pipeline import Database

pytestmark = pytest.mark.integration

ROWS = 300
TOKEN = "snap-t0ken"


@pytest.fixture
def pg_db(postgres: PostgresServer) -> Iterator[Database]:
    yield from _database(postgres, postgres.dsn)


@pytest.fixture
def workdir(pg_db: Database, tmp_path: Path) -> tuple[Path, int]:
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, %s) g",
                     (ROWS,))
    con = sqlite3.connect(tmp_path / "legacy.db")
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    con.commit()
    con.close()
    port = free_port()
    (tmp_path / "pipeline.yaml").write_text(f"""
log: {{backend: embedded, path: ./log}}
api: {{listen: "127.0.0.1:{port}", token: "{TOKEN}"}}
sources:
  - {{name: shop, type: postgres, dsn: "{pg_db.dsn}", tables: [public.items],
     heartbeat_interval: 500ms, snapshot_chunk_size: 100}}
  - {{name: legacy, type: sql_poll, url: "sqlite:///./legacy.db", table: orders,
     mode: incrementing, incrementing_column: id, interval: 100ms}}
sinks:
  - {{name: files, type: batch, topics: ["shop.*"], path: ./exports, flush_interval: 100ms}}
""")
    return tmp_path, port


def _items_in_log(port: int) -> int:
    topics = httpx.get(f"http://127.0.0.1:{port}/topics",
                       headers={"Authorization": f"Bearer {TOKEN}"}).json()
    return sum(t["records"] for t in topics if t["name"] == "shop.public.items")


def test_snapshot_without_a_running_hub_fails_and_says_to_start_it(
    workdir: tuple[Path, int],
) -> None:
    cwd, port = workdir
    done = cli(cwd, "snapshot", "shop", "-c", "pipeline.yaml")
    assert done.returncode == 1, done.stdout
    assert f"no hub answered at http://127.0.0.1:{port}" in " ".join(done.stderr.split())


def test_snapshot_through_the_cli_reads_the_table_again_on_the_running_hub(
    workdir: tuple[Path, int],
) -> None:
    cwd, port = workdir
    running = RunningCli(cwd)
    try:
        wait_for(lambda: "API and status page on" in running.log(), timeout=60,
                 what="the hub's API up")
        wait_for(lambda: _items_in_log(port) == ROWS, timeout=60, what="initial snapshot")

        unknown = cli(cwd, "snapshot", "nope", "-c", "pipeline.yaml")
        assert unknown.returncode == 2
        assert "no source named 'nope'" in unknown.stderr

        bad_table = cli(cwd, "snapshot", "shop", "--table", "public.nope", "-c",
                        "pipeline.yaml")
        assert bad_table.returncode == 2
        assert "does not capture public.nope" in " ".join(bad_table.stderr.split())

        cannot = cli(cwd, "snapshot", "legacy", "-c", "pipeline.yaml")
        assert cannot.returncode == 1
        assert "has no incremental snapshot" in " ".join(cannot.stderr.split())

        done = cli(cwd, "snapshot", "shop", "--table", "public.items", "-c", "pipeline.yaml")
        assert done.returncode == 0, done.stderr
        assert "incremental snapshot of public.items requested" in done.stdout
        wait_for(lambda: _items_in_log(port) >= 2 * ROWS, timeout=60,
                 what="the table read again into the log")
    finally:
        assert running.stop() == 0, running.log()
