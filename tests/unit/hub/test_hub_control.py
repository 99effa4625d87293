"""Hub-level state changes are serialised: restarts from many threads at once (not only
through the API) leave exactly one worker per connector, and none starts after stop."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hub.config import load_pipeline
from hub.errors import UsageError
from hub.runtime import Hub

PIPELINE = """
log: {backend: embedded, path: ./log}
api: {enabled: false}
sources:
  - {name: legacy, type: sql_poll, url: "sqlite:///./legacy.db", table: orders,
     mode: incrementing, incrementing_column: id, interval: 100ms}
sinks:
  - {name: files, type: batch, topics: ["legacy.*"], format: jsonl, path: ./exports,
     flush_interval: 100ms}
"""


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    monkeypatch.chdir(tmp_path)
    con = sqlite3.connect(tmp_path / "legacy.db")
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)")
    con.commit()
    con.close()
    (tmp_path / "p.yaml").write_text(PIPELINE)
    running = Hub(load_pipeline(tmp_path / "p.yaml"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _alive(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


def test_concurrent_restarts_leave_exactly_one_worker_per_connector(hub: Hub) -> None:
    names = ["legacy", "files"] * 4
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(hub.restart, names))
    for thread_name, connector in (("source:legacy", "legacy"), ("sink:files", "files")):
        alive = _alive(thread_name)
        assert len(alive) == 1, f"{len(alive)} workers of {connector}"
        assert alive[0] is hub.worker(connector)


def test_no_restart_after_the_hub_stopped(hub: Hub) -> None:
    hub.stop()
    with pytest.raises(UsageError, match="stopping"):
        hub.restart("files")
    assert _alive("sink:files") == []
