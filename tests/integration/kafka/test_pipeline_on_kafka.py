"""The hub runs a pipeline unchanged on the Kafka backend: configs/quickstart.yaml with its
log section switched to ``backend: kafka`` (sql_poll source -> DuckDB and Parquet sinks),
run twice through the CLI; only the new rows flow the second time."""

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
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_quickstart_pipeline_runs_on_the_kafka_backend(
    kafka: KafkaCluster, tmp_path: Path
) -> None:
    text = (ROOT / "configs" / "quickstart.yaml").read_text()
    # a fresh source name: the cluster (and its checkpoint topic) is shared by the session
    name = unique("legacy").replace("-", "_")
    text = re.sub(
        r"log:\n(  .*\n)+",
        f"log:\n  backend: kafka\n  kafka: {{bootstrap: '{kafka.bootstrap}'}}\n",
        text,
        count=1,
    )
    text = text.replace("name: legacy", f"name: {name}").replace('"legacy.*"', f'"{name}.*"')
    config = tmp_path / "pipeline.yaml"
    config.write_text(text)
    helper = str(ROOT / "scripts" / "quickstart.py")
    for rows in (500, 200):
        res = run(tmp_path, helper, "make", "--rows", str(rows))
        assert res.returncode == 0, res.stderr
        res = run(tmp_path, "-m", "hub.cli", "run", str(config), "--until-caught-up")
        assert res.returncode == 0, res.stderr
        res = run(tmp_path, helper, "report")
        assert res.returncode == 0, res.stdout + res.stderr
    assert "rows in DuckDB warehouse      : 700" in res.stdout
    assert "change events in Parquet files: 700" in res.stdout
