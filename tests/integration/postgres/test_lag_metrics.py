"""Seconds behind of the Postgres source: 0 while idle and caught up, growing while the
source is paused behind new commits, 0 again after resume — on a running hub's /metrics, and
directly on the source when no heartbeat was ever made durable (the case that once failed
the hub test in the full suite: the pause came before the first heartbeat batch)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from hub.config import load_pipeline
from hub.runtime import Hub
from tests.fixtures.services import PostgresServer
from tests.integration.api.conftest import open_api, wait_for
from tests.integration.postgres.conftest import _database
from tests.integration.postgres.pipeline import Database, Pipeline, config, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_db(postgres: PostgresServer) -> Iterator[Database]:
    yield from _database(postgres, postgres.dsn)


@pytest.fixture
def running(pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[tuple[Hub, str]]:
    monkeypatch.chdir(tmp_path)
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
    (tmp_path / "p.yaml").write_text(f"""
log: {{path: ./log}}
api: {{enabled: false}}
sources:
  - {{name: shop, type: postgres, dsn: "{pg_db.dsn}", tables: [public.items],
     heartbeat_interval: 200ms}}
""")
    hub = Hub(load_pipeline(tmp_path / "p.yaml"))
    hub.start()
    api = open_api(hub, "127.0.0.1:0", None)
    try:
        yield hub, api.url
    finally:
        api.stop()
        hub.stop()


def _gauge(url: str, name: str) -> float | None:
    found = re.search(rf'^{name}{{source="shop"}} (\S+)$', httpx.get(f"{url}/metrics").text,
                      re.MULTILINE)
    return None if found is None else float(found.group(1))


def test_seconds_behind_grow_while_paused_behind_commits_and_return_to_zero(
    running: tuple[Hub, str], pg_db: Database
) -> None:
    hub, url = running
    wait_for(lambda: _gauge(url, "changehub_source_lag_seconds") == 0.0, timeout=60,
             what="no lag once streaming")
    hub.pause("shop")
    wait_for(lambda: hub.worker("shop").status.state.value == "PAUSED", timeout=60,
             what="shop paused")
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO items SELECT g, 'n' FROM generate_series(1, 100) g")
    wait_for(lambda: (_gauge(url, "changehub_source_lag_seconds") or 0.0) >= 0.5,
             timeout=60, what="seconds behind growing while paused")
    wait_for(lambda: (_gauge(url, "changehub_source_lag_bytes") or 0.0) > 0, timeout=60,
             what="slot lag in bytes while paused")
    hub.resume("shop")
    wait_for(lambda: _gauge(url, "changehub_source_lag_seconds") == 0.0, timeout=60,
             what="no lag after resume")
    topics = httpx.get(f"{url}/topics").json()
    assert sum(t["records"] for t in topics if t["name"] == "shop.public.items") == 100


def test_seconds_behind_grow_behind_commits_before_any_heartbeat_was_durable(
    db: Database, tmp_path: Path
) -> None:
    # Heartbeats far apart: the only durable batch is the (empty) snapshot's, so the source
    # knows no commit time of a durable change when it falls behind. It was caught up a
    # moment ago, so its lag must still count from then, not vanish.
    db.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
    pipeline = Pipeline(tmp_path / "log", config(db, heartbeat_interval="1h"))
    source = pipeline.start()
    try:
        pipeline.run_until(lambda: source.metrics() == {"lag_seconds": 0.0},
                           "no lag once streaming", deadline_s=60)
        db.execute("INSERT INTO items SELECT g, 'n' FROM generate_series(1, 100) g")
        # Nothing takes batches now, as while the hub pauses the source.
        wait_until(lambda: source.metrics().get("lag_seconds", 0.0) >= 0.5,
                   "seconds behind growing while nothing is appended", deadline_s=60)
        pipeline.run_until(lambda: len(pipeline.events("shop.public.items")) == 100
                           and source.metrics() == {"lag_seconds": 0.0},
                           "the 100 inserts durable and no lag", deadline_s=60)
    finally:
        pipeline.close()
