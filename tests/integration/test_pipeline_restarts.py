"""The serverless pipeline (SQLite -> embedded log -> Parquet files + DuckDB) through the real
``changehub`` CLI: every example config runs, SIGTERM stops cleanly, and kill -9 at random
moments while rows keep arriving loses nothing and duplicates nothing in either target."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHANGEHUB = [sys.executable, "-m", "hub.cli"]

PIPELINE = """
log: {backend: embedded, path: ./log}
sources:
  - name: legacy
    type: sql_poll
    url: sqlite:///./legacy.db
    table: orders
    mode: incrementing
    incrementing_column: id
    interval: 200ms
    batch_size: 700
sinks:
  - name: files
    type: batch
    topics: ["legacy.*"]
    format: parquet
    path: ./exports
    flush_interval: 300ms
    max_batch_records: 900
  - name: warehouse
    type: sql
    topics: ["legacy.*"]
    url: duckdb:///./warehouse.duckdb
    table: "{table}"
    flush_interval: 250ms
    max_batch_records: 1100
"""


def make_source(db: Path) -> None:
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount TEXT, "
        "note TEXT)"
    )
    con.commit()
    con.close()


def insert_rows(db: Path, start: int, count: int) -> None:
    con = sqlite3.connect(db, timeout=30)
    con.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, ?)",
        [(i, f"c{i % 17}", f"{i * 7 % 1000}.{i % 100:02d}", "n" * (i % 50))
         for i in range(start, start + count)],
    )
    con.commit()
    con.close()


def source_rows(db: Path) -> dict[int, tuple[str, str, str]]:
    con = sqlite3.connect(db)
    out = {r[0]: (r[1], r[2], r[3]) for r in con.execute("SELECT * FROM orders")}
    con.close()
    return out


def run_cli(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*CHANGEHUB, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def start_hub(cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(cwd / "hub.log", "ab") as log:  # the child keeps its own copy of the fd
        return subprocess.Popen([*CHANGEHUB, "run", "pipeline.yaml"], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)


def wait_until(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def committed_offset(cwd: Path, sink: str) -> int:
    res = run_cli(cwd, "offsets", sink, "-c", "pipeline.yaml")
    for line in res.stdout.splitlines():
        if "legacy.orders[0]" in line:
            cells = [c.strip() for c in line.split("│") if c.strip()]
            return int(cells[2]) if cells[2] != "-" else 0
    return 0


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    make_source(tmp_path / "legacy.db")
    yield tmp_path


def parquet_events(exports: Path) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for f in sorted(exports.rglob("*.parquet")):
        events.extend(pq.read_table(f).to_pylist())
    return events


def check_targets_equal_source(cwd: Path) -> None:
    expected = source_rows(cwd / "legacy.db")
    con = duckdb.connect(str(cwd / "warehouse.duckdb"), read_only=True)
    got = {r[0]: (r[1], r[2], r[3])
           for r in con.execute("SELECT id, customer, amount, note FROM orders").fetchall()}
    con.close()
    assert got == expected, f"warehouse differs: {len(got)} rows vs {len(expected)} in source"

    events = parquet_events(cwd / "exports")
    offsets = [e["offset"] for e in events]
    assert len(offsets) == len(set(offsets)), "a log offset was written to files twice"
    ids = []
    for e in events:
        after = e["after"]
        row = orjson.loads(after) if isinstance(after, str | bytes) else after
        assert isinstance(row, dict)
        ids.append(row["id"])
    assert sorted(ids) == sorted(expected), "files do not hold every source row exactly once"


def test_quickstart_config_validates() -> None:
    res = run_cli(ROOT, "validate", "configs/quickstart.yaml")
    assert res.returncode == 0, res.stderr
    assert "valid" in res.stdout


def test_sigterm_flushes_commits_and_exits_zero_within_seconds(workdir: Path) -> None:
    insert_rows(workdir / "legacy.db", 1, 3000)
    hub = start_hub(workdir)
    try:
        wait_until(lambda: (workdir / "exports").exists()
                   and any((workdir / "exports").rglob("*.parquet")), 60, "first file")
    finally:
        hub.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        try:
            hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            hub.kill()
            hub.wait()
            raise
    assert hub.returncode == 0, (workdir / "hub.log").read_text()
    assert time.monotonic() - t0 < 10
    # Whatever it managed before the signal is committed: a one-shot run finishes the rest.
    res = run_cli(workdir, "run", "pipeline.yaml", "--until-caught-up")
    assert res.returncode == 0, res.stderr
    check_targets_equal_source(workdir)


@pytest.mark.slow
@pytest.mark.timeout(900)  # five hub starts: seconds each on a quiet machine, a minute at load 40
def test_kill9_at_random_moments_loses_and_duplicates_nothing(workdir: Path) -> None:
    rng = random.Random(20261125)
    db = workdir / "legacy.db"
    stop = threading.Event()
    next_id = [1]

    def writer() -> None:
        while not stop.is_set():
            n = rng.randint(50, 400)
            insert_rows(db, next_id[0], n)
            next_id[0] += n
            stop.wait(0.05)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    kills = 0
    log = workdir / "hub.log"
    try:
        for round_ in range(1, 6):
            hub = start_hub(workdir)
            # Kill it mid-stream: once it runs (starting alone can take many seconds on a busy
            # machine), at a random moment of its work.
            try:
                wait_until(lambda n=round_: log.exists()
                           and log.read_text().count("changehub running") >= n, 180,
                           "the hub up")
                time.sleep(rng.uniform(0.5, 2.5))  # the chaos itself, not synchronisation
            finally:
                hub.kill()
                hub.wait(30)
            kills += 1
    finally:
        stop.set()
        t.join(10)
    assert kills == 5
    assert committed_offset(workdir, "files") > 0, "the killed hubs delivered nothing"
    res = run_cli(workdir, "run", "pipeline.yaml", "--until-caught-up", timeout=300)
    assert res.returncode == 0, res.stderr
    check_targets_equal_source(workdir)
    assert len(source_rows(db)) == next_id[0] - 1 > 0


def test_tail_of_an_unknown_topic_names_it(workdir: Path) -> None:
    insert_rows(workdir / "legacy.db", 1, 10)
    assert run_cli(workdir, "run", "pipeline.yaml", "--until-caught-up").returncode == 0
    res = run_cli(workdir, "tail", "legacy.order", "-c", "pipeline.yaml", "--no-follow")
    assert res.returncode == 1
    assert "legacy.order" in res.stderr
    res = run_cli(workdir, "tail", "legacy.orders", "-c", "pipeline.yaml", "--no-follow",
                  "--from", "earliest", "--raw")
    assert res.returncode == 0, res.stderr
    lines = [orjson.loads(line) for line in res.stdout.splitlines()]
    assert [r["offset"] for r in lines] == list(range(10))
    assert lines[3]["value"]["after"]["id"] == 4


def test_reset_replays_sinks_and_the_targets_stay_exact(workdir: Path) -> None:
    insert_rows(workdir / "legacy.db", 1, 2500)
    res = run_cli(workdir, "run", "pipeline.yaml", "--until-caught-up")
    assert res.returncode == 0, res.stderr
    assert committed_offset(workdir, "warehouse") == 2500
    # Lose a row in the warehouse: only a replay that is applied (not skipped as already
    # seen) brings it back.
    con = duckdb.connect(str(workdir / "warehouse.duckdb"))
    con.execute("DELETE FROM orders WHERE id = 5")
    con.close()
    res = run_cli(workdir, "reset", "warehouse", "--to", "earliest", "-c", "pipeline.yaml")
    assert res.returncode == 0, res.stderr
    assert "legacy.orders[0] -> 0" in res.stdout
    # Mid-way for the files: a file straddling 1000 is rewritten whole, so the reset lands on
    # that file's first offset, at or before 1000.
    res = run_cli(workdir, "reset", "files", "--to", "1000", "-c", "pipeline.yaml")
    assert res.returncode == 0, res.stderr
    landed = int(res.stdout.strip().rsplit("-> ", 1)[1])
    assert 0 < landed <= 1000
    assert committed_offset(workdir, "files") == landed
    res = run_cli(workdir, "run", "pipeline.yaml", "--until-caught-up")
    assert res.returncode == 0, res.stderr
    assert committed_offset(workdir, "warehouse") == 2500
    assert committed_offset(workdir, "files") == 2500
    # The replays were applied (not skipped) and left every target exactly equal.
    check_targets_equal_source(workdir)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["validate", "missing.yaml"], 2, "no such pipeline file"),
        (["offsets", "-c", "missing.yaml"], 2, "no such pipeline file"),
        (["reset", "nosuch", "--to", "earliest", "-c", "pipeline.yaml"], 2, "no sink named"),
        (["reset", "files", "--to", "yesterday", "-c", "pipeline.yaml"], 2, "cannot reset to"),
        (["tail", "no.such.topic", "-c", "pipeline.yaml", "--no-follow"], 2, "run the pipeline"),
        (["frobnicate"], 2, "No such command"),
    ],
)
def test_cli_errors_have_clear_messages_and_exit_codes(
    workdir: Path, args: list[str], code: int, message: str
) -> None:
    res = run_cli(workdir, *args)
    assert res.returncode == code, (res.stdout, res.stderr)
    assert message in res.stderr + res.stdout
