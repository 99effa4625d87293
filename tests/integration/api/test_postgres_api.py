"""The API on a hub with a real Postgres source: an incremental snapshot triggered through
the API reads the table again while streaming goes on, an unknown table is refused, and
Prometheus shows the replication slot's lag."""

from __future__ import annotations

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
from tests.integration.postgres.pipeline import Database

pytestmark = pytest.mark.integration

ROWS = 5000


@pytest.fixture
def pg_db(postgres: PostgresServer) -> Iterator[Database]:
    yield from _database(postgres, postgres.dsn)


@pytest.fixture
def api_url(pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, %s) g",
                     (ROWS,))
    (tmp_path / "p.yaml").write_text(f"""
log: {{path: ./log}}
api: {{enabled: false}}
sources:
  - {{name: shop, type: postgres, dsn: "{pg_db.dsn}", tables: [public.items],
     heartbeat_interval: 500ms, snapshot_chunk_size: 50}}
sinks:
  - {{name: files, type: batch, topics: ["shop.*"], path: ./exports, flush_interval: 100ms}}
""")
    hub = Hub(load_pipeline(tmp_path / "p.yaml"))
    hub.start()
    api = open_api(hub, "127.0.0.1:0", None)
    try:
        yield api.url
    finally:
        api.stop()
        hub.stop()


def _topic_records(url: str) -> int:
    topics = httpx.get(f"{url}/topics").json()
    return sum(t["records"] for t in topics if t["name"] == "shop.public.items")


def test_a_snapshot_requested_through_the_api_reads_the_table_again(api_url: str) -> None:
    wait_for(lambda: _topic_records(api_url) == ROWS, timeout=60, what="initial snapshot")
    wait_for(lambda: httpx.get(f"{api_url}/connectors/shop").json()["state"] == "RUNNING",
             what="shop streaming")
    bad = httpx.post(f"{api_url}/connectors/shop/snapshot", json={"tables": ["public.nope"]})
    assert bad.status_code == 400
    assert "does not capture public.nope" in bad.json()["detail"]
    ok = httpx.post(f"{api_url}/connectors/shop/snapshot", json={"tables": ["public.items"]})
    assert ok.status_code == 202, ok.text
    assert "public.items" in ok.json()["message"]
    seen: list[dict[str, object]] = []

    def snapshotting() -> bool:
        shop = httpx.get(f"{api_url}/connectors/shop").json()
        if shop["state"] == "SNAPSHOTTING":
            seen.append(shop)
        return bool(seen) or _topic_records(api_url) >= 2 * ROWS

    wait_for(snapshotting, timeout=60, what="SNAPSHOTTING or the snapshot done")
    assert seen, "the incremental snapshot was never seen in progress"
    progress = seen[0]["progress"]
    assert isinstance(progress, dict)
    assert progress["what"] == "incremental snapshot public.items"
    wait_for(lambda: _topic_records(api_url) >= 2 * ROWS, timeout=60,
             what="the table read again into the topic")


def test_metrics_show_the_replication_slot_lag(api_url: str) -> None:
    wait_for(lambda: 'changehub_source_lag_bytes{source="shop"}'
             in httpx.get(f"{api_url}/metrics").text, timeout=60, what="slot lag metric")
