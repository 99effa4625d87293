"""A source that stands by shows it: of two hub processes sharing a pipeline on Kafka, the
one holding the source's lease reports it RUNNING and the other STANDBY — in the API, the
Prometheus metrics and ``changehub status`` — and when the holder is killed the other one
takes the source over and reports RUNNING."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.services import KafkaCluster
from tests.integration.kafka.conftest import unique
from tests.integration.scaleout.hubs import ROOT, Hub, wait_until

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def state(port: int, name: str) -> str | None:
    """The connector's state from a hub's API; None while the API does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/connectors/{name}", timeout=5) as r:
            return str(json.load(r)["state"])
    except OSError:
        return None


def metric(port: int, name: str, shown: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    line = next(
        ln for ln in text.splitlines()
        if ln.startswith("changehub_connector_state{") and f'connector="{name}"' in ln
        and f'state="{shown}"' in ln
    )  # fmt: skip
    return line.rsplit(" ", 1)[1]


def test_the_process_without_the_lease_shows_the_source_standby(
    kafka: KafkaCluster, tmp_path: Path
) -> None:
    source = unique("legacy").replace("-", "_")
    db = tmp_path / "legacy.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total TEXT)")
        conn.execute("INSERT INTO orders VALUES (1, '9.50')")
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        f"""
log: {{backend: kafka, kafka: {{bootstrap: "{kafka.bootstrap}"}}}}
api: {{listen: "127.0.0.1:${{API_PORT}}"}}
sources:
  - {{name: {source}, type: sql_poll, url: "sqlite:///{db}", table: orders,
     mode: incrementing, incrementing_column: id, interval: 200ms}}
"""
    )
    ports = {"a": free_port(), "b": free_port()}
    with (
        Hub("a", config, tmp_path / "a", {"API_PORT": str(ports["a"])}) as a,
        Hub("b", config, tmp_path / "b", {"API_PORT": str(ports["b"])}) as b,
    ):
        hubs = {"a": a, "b": b}

        def states() -> dict[str, str | None]:
            return {h: state(p, source) for h, p in ports.items()}

        wait_until(
            lambda: sorted(map(str, states().values())) == ["RUNNING", "STANDBY"],
            "one hub RUNNING the source and the other STANDBY",
        )
        now = states()
        holder = next(h for h, s in now.items() if s == "RUNNING")
        other = "b" if holder == "a" else "a"
        wait_until(lambda: hubs[holder].says("holds its lease") == 1, "the holder's log line")
        assert hubs[other].says("holds its lease") == 0
        assert state(ports[other], source) == "STANDBY"
        assert metric(ports[other], source, "STANDBY") == "1.0"
        assert metric(ports[other], source, "RUNNING") == "0.0"
        assert metric(ports[holder], source, "RUNNING") == "1.0"

        env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200",
               "API_PORT": str(ports[other])}
        shown = subprocess.run(
            [sys.executable, "-m", "hub.cli", "status", "-c", str(config)], env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        row = next(ln for ln in shown.stdout.splitlines() if source in ln)
        assert "STANDBY" in row, shown.stdout

        hubs[holder].kill()
        wait_until(lambda: state(ports[other], source) == "RUNNING", "the other to run it")
        wait_until(lambda: hubs[other].says("holds its lease") == 1, "its log line")
        assert hubs[other].stop() == 0, hubs[other].text()[-4000:]
