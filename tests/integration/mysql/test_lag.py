"""Binlog lag of the MySQL/MariaDB source, against a real MariaDB: bytes and seconds behind
while the log lags, 0 once caught up, and the same numbers on a running hub's /metrics."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from connectors.source.mysql.lag import bytes_behind
from hub.config import load_pipeline
from hub.runtime import Hub
from tests.integration.api.conftest import open_api, wait_for
from tests.integration.mysql.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration


def test_bytes_behind_count_the_rest_of_older_binlog_files() -> None:
    logs = [("b.000001", 1000), ("b.000002", 700), ("b.000003", 300)]
    assert bytes_behind(logs, "b.000003", 300) == 0
    assert bytes_behind(logs, "b.000003", 100) == 200
    assert bytes_behind(logs, "b.000002", 600) == 100 + 300
    assert bytes_behind(logs, "b.000000", 4) is None  # purged: beyond measuring


def test_lag_grows_while_the_log_is_behind_and_returns_to_zero_after_catch_up(
    db: Database, log_dir: Path
) -> None:
    db.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
    p = Pipeline(log_dir, config(db, snapshot="never", heartbeat_interval="200ms"))
    try:
        source = p.start()

        def caught_up() -> bool:
            m = source.metrics()
            return m.get("lag_bytes") == 0.0 and m.get("lag_seconds") == 0.0

        p.run_until(caught_up, "no lag at the start")
        t0 = time.time()
        db.executemany("INSERT INTO items VALUES (%s, %s)", [(i, f"n{i}") for i in range(200)])
        t1 = time.time()
        behind = source.metrics()  # nothing polled since: the log is behind the server
        assert behind["lag_bytes"] > 200 * 10
        assert behind["lag_seconds"] >= t1 - t0 - 0.002
        topic = p.topic(db, "items")
        p.run_until(lambda: len(p.records(topic)) == 200 and caught_up(), "caught up again")
    finally:
        p.close()


@pytest.fixture
def hub_url(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    db.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
    cfg = config(db)
    (tmp_path / "p.yaml").write_text(f"""
log: {{path: ./log}}
api: {{enabled: false}}
sources:
  - {{name: shop, type: mariadb, url: "{cfg.url}", databases: [{db.name}],
     heartbeat_interval: 200ms, snapshot: never}}
""")
    hub = Hub(load_pipeline(tmp_path / "p.yaml"))
    hub.start()
    api = open_api(hub, "127.0.0.1:0", None)
    try:
        yield api.url
    finally:
        api.stop()
        hub.stop()


def _gauge(url: str, name: str) -> float | None:
    found = re.search(rf'^{name}{{source="shop"}} (\S+)$', httpx.get(f"{url}/metrics").text,
                      re.MULTILINE)
    return None if found is None else float(found.group(1))


def test_metrics_show_the_binlog_lag_of_a_running_hub(hub_url: str, db: Database) -> None:
    wait_for(lambda: _gauge(hub_url, "changehub_source_lag_bytes") == 0.0
             and _gauge(hub_url, "changehub_source_lag_seconds") == 0.0,
             what="binlog lag 0 on /metrics")
    httpx.put(f"{hub_url}/connectors/shop/pause").raise_for_status()
    wait_for(lambda: httpx.get(f"{hub_url}/connectors/shop").json()["state"] == "PAUSED",
             what="shop paused")
    db.execute("INSERT INTO items VALUES (1, 'a')")
    bytes_ = _gauge(hub_url, "changehub_source_lag_bytes")
    assert bytes_ is not None and bytes_ > 0
    wait_for(lambda: (_gauge(hub_url, "changehub_source_lag_seconds") or 0.0) >= 0.2,
             what="seconds of lag growing while paused")
    httpx.put(f"{hub_url}/connectors/shop/resume").raise_for_status()
    wait_for(lambda: _gauge(hub_url, "changehub_source_lag_bytes") == 0.0
             and _gauge(hub_url, "changehub_source_lag_seconds") == 0.0,
             what="binlog lag back to 0 after resume")
