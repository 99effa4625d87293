"""``changehub export`` as a real process: kill -9 mid-run then rerun, reruns, lock, lost data."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.sink.batch.export import RUNS_DIR
from log.api import Durability, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog
from tests.unit.batch_loader.conftest import DAY_MS, T0, TOPIC, change

CHANGEHUB = [sys.executable, "-m", "hub.cli"]
ROOT = Path(__file__).resolve().parents[3]
PARTITIONS = 4
PER_PARTITION = 60_000
DEADLINE_S = 60.0

PIPELINE = """
log: {backend: embedded, path: ./log, retention: 30d}
api: {enabled: false}
sources: []
sinks:
  - {name: nightly, type: batch, topics: ["shop.*"], path: ./out, format: parquet,
     schedule: "0 2 * * *", timezone: Europe/Paris, max_file_records: 20000}
"""


def fill(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pipeline.yaml").write_text(PIPELINE)
    with EmbeddedLog(directory / "log", Durability(policy="never"), TopicConfig(),
                     background_jobs=False) as log_:
        log_.create_topic(TOPIC, TopicConfig(partitions=PARTITIONS))
        for p in range(PARTITIONS):
            tp = TopicPartition(TOPIC, p)
            for start in range(0, PER_PARTITION, 5000):
                # Two days of changes, so the files spread over dt= directories.
                log_.append(tp, [r for i in range(start, start + 5000)
                                 for r in change("c", i, f"name {i}", T0 + i * 2000)])


def export(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHANGEHUB, "export", "nightly", "-c", "pipeline.yaml", *args],
                          cwd=directory, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=DEADLINE_S, check=False)


def visible(directory: Path) -> dict[str, bytes]:
    """Every file of the export but the run manifests (they hold the time they were written)."""
    root = directory / "out"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and RUNS_DIR not in p.relative_to(root).parts}


def kill_mid_run(directory: Path, files: int) -> None:
    """Start an export and SIGKILL it once ``files`` data files are in place."""
    proc = subprocess.Popen([*CHANGEHUB, "export", "nightly", "-c", "pipeline.yaml"],
                            cwd=directory, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(list((directory / "out").glob("*/dt=*/*.parquet"))) < files:
            assert proc.poll() is None, "the export finished before it could be killed"
            assert time.monotonic() < deadline, "no export file appeared"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(DEADLINE_S)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_kill_9_mid_export_then_rerun_gives_the_files_of_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    fill(killed)
    shutil.copytree(killed, clean)
    kill_mid_run(killed, files=1)
    kill_mid_run(killed, files=4)  # the rerun killed too, later on
    assert not list((killed / "out").rglob("_SUCCESS"))
    assert not list((killed / "out" / RUNS_DIR).glob("*.json"))
    rerun = export(killed)
    assert rerun.returncode == 0, rerun.stderr
    reference = export(clean)
    assert reference.returncode == 0, reference.stderr
    files = visible(killed)
    assert files == visible(clean)
    data = [f for f in files if f.endswith(".parquet")]
    assert len(data) >= PARTITIONS * PER_PARTITION // 20_000
    assert f"{PARTITIONS * PER_PARTITION} record(s)" in rerun.stdout
    # The same night again: nothing new, nothing written twice.
    again = export(killed)
    assert again.returncode == 0, again.stderr
    assert "0 record(s) in 0 file(s)" in again.stdout
    assert visible(killed) == files


def test_export_until_a_time_then_the_rest(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    directory.mkdir()
    (directory / "pipeline.yaml").write_text(PIPELINE)
    with EmbeddedLog(directory / "log", Durability(policy="never"), TopicConfig(),
                     background_jobs=False) as log_:
        log_.create_topic(TOPIC, TopicConfig())
        for i in range(10):
            log_.append(TopicPartition(TOPIC, 0), change("c", i, "x", T0 + i * DAY_MS // 4))
    first = export(directory, "--until", "2026-01-31T23:00:00Z")
    assert first.returncode == 0, first.stderr
    assert "5 record(s)" in first.stdout
    rest = export(directory)
    assert rest.returncode == 0, rest.stderr
    assert "5 record(s)" in rest.stdout
    bad = export(directory, "--until", "latest")
    assert bad.returncode == 2 and "ISO-8601 time" in bad.stderr


def test_export_while_a_hub_holds_the_log_exits_2_and_says_why(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    directory.mkdir()
    (directory / "pipeline.yaml").write_text(PIPELINE)
    with EmbeddedLog(directory / "log", background_jobs=False):
        res = export(directory)
    assert res.returncode == 2
    assert "a hub is running on this log" in res.stderr


def test_export_reports_records_lost_to_retention_and_exits_1(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    directory.mkdir()
    (directory / "pipeline.yaml").write_text(PIPELINE)
    tp = TopicPartition(TOPIC, 0)
    now = [T0 / 1000]
    log_ = EmbeddedLog(directory / "log", Durability(policy="never"), TopicConfig(),
                       background_jobs=False, clock=lambda: now[0])
    try:
        log_.create_topic(TOPIC, TopicConfig(segment_bytes=2000, retention_ms=DAY_MS))
        log_.commit_offsets("nightly", {tp: 0})
        for i in range(40):
            log_.append(tp, change("c", i, "x", T0))
        now[0] += 3 * DAY_MS / 1000
        log_.append(tp, change("c", 99, "x", T0 + 3 * DAY_MS))
        assert log_.run_retention() > 0
        lost = log_.start_offset(tp)
    finally:
        log_.close()
    res = export(directory)
    assert res.returncode == 1, res.stderr
    assert f"LOST {lost} record(s) of {tp}" in res.stderr
