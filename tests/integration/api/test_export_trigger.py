"""POST /connectors/{name}/export runs a scheduled batch sink's export now, and the API shows
that sink as a sink with its lag."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hub.api.server import start_api
from hub.config import load_pipeline
from hub.runtime import Hub
from tests.integration.api.conftest import wait_for

PIPELINE = """
log: {backend: embedded, path: ./log}
api: {listen: "127.0.0.1:0"}
sources:
  - {name: legacy, type: sql_poll, url: "sqlite:///./legacy.db", table: orders,
     mode: incrementing, incrementing_column: id, interval: 100ms}
sinks:
  - {name: nightly, type: batch, topics: ["legacy.*"], path: ./exports, format: jsonl,
     schedule: "0 2 * * *", misfire: skip}
"""


def test_export_on_demand_runs_a_scheduled_sink_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    monkeypatch.chdir(tmp_path)
    con = sqlite3.connect(tmp_path / "legacy.db")
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    con.executemany("INSERT INTO orders VALUES (?, ?)", [(i, f"i{i}") for i in range(1, 51)])
    con.commit()
    con.close()
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    config = load_pipeline(tmp_path / "pipeline.yaml")
    hub = Hub(config)
    hub.start()
    api = start_api(hub, config.api)
    try:
        with httpx.Client(base_url=api.url, timeout=30) as c:
            wait_for(lambda: hub.log.list_topics() and hub.log.end_offset(
                next(iter(_tps(hub)))) == 50, what="the source's 50 rows in the log")
            view = c.get("/connectors/nightly").json()
            assert view["kind"] == "sink"
            assert view["lag"]["records"] == 50  # nothing exported before 02:00
            assert not (tmp_path / "exports" / "_runs").exists()
            res = c.post("/connectors/nightly/export")
            assert res.status_code == 202, res.text
            wait_for(lambda: any((tmp_path / "exports" / "_runs").glob("*.json"))
                     if (tmp_path / "exports" / "_runs").exists() else False,
                     what="the export's run manifest")
            wait_for(lambda: c.get("/connectors/nightly").json()["lag"]["records"] == 0,
                     what="the export's offsets committed")
    finally:
        api.stop()
        hub.stop()


def _tps(hub: Hub) -> list:  # type: ignore[type-arg]
    from log.api import TopicPartition

    return [TopicPartition(t, 0) for t in hub.log.list_topics()]
