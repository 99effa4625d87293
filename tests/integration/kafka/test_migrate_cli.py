"""`changehub migrate-log`: a pipeline moves from the embedded log to Kafka without a
re-snapshot; afterwards only new rows flow and every target still holds each row once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.services import KafkaCluster
from tests.integration.kafka.conftest import unique

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_migrate_log_moves_a_pipeline_to_kafka_without_replaying_it(
    kafka: KafkaCluster, tmp_path: Path
) -> None:
    name = unique("legacy").replace("-", "_")
    text = (ROOT / "configs" / "quickstart.yaml").read_text()
    text = text.replace("name: legacy", f"name: {name}").replace('"legacy.*"', f'"{name}.*"')
    text += "api: {enabled: false}\n"
    embedded = tmp_path / "embedded.yaml"
    embedded.write_text(text)
    on_kafka = tmp_path / "kafka.yaml"
    on_kafka.write_text(re.sub(
        r"log:\n(  .*\n)+",
        f"log:\n  backend: kafka\n  kafka: {{bootstrap: '{kafka.bootstrap}'}}\n",
        text, count=1,
    ))
    helper = str(ROOT / "scripts" / "quickstart.py")
    assert run(tmp_path, helper, "make", "--rows", "600").returncode == 0
    res = run(tmp_path, "-m", "hub.cli", "run", str(embedded), "--until-caught-up")
    assert res.returncode == 0, res.stderr

    res = run(tmp_path, "-m", "hub.cli", "migrate-log", "-c", str(embedded), "--to", str(on_kafka))
    assert res.returncode == 0, res.stderr
    assert f"topic {name}.orders: 600 records" in res.stdout
    assert f"source {name}: checkpoint copied" in res.stdout

    assert run(tmp_path, helper, "make", "--rows", "250").returncode == 0
    res = run(tmp_path, "-m", "hub.cli", "run", str(on_kafka), "--until-caught-up")
    assert res.returncode == 0, res.stderr
    # The source resumed from its copied checkpoint (no re-read of the 600), the sinks from
    # their translated offsets: report() fails on any missing or duplicated row.
    res = run(tmp_path, helper, "report")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "rows in DuckDB warehouse      : 850" in res.stdout
    assert "change events in Parquet files: 850" in res.stdout


def test_migrate_log_refuses_the_same_log(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "log: {backend: embedded, path: ./log}\n"
        "sinks: [{name: a, type: batch, topics: [x], path: ./e}]\n"
    )
    res = run(tmp_path, "-m", "hub.cli", "migrate-log", "-c", "p.yaml", "--to", "p.yaml")
    assert res.returncode == 2
    assert "name the same log" in res.stderr
