"""The MySQL source through the real ``changehub`` CLI: configs/mysql-to-duckdb.yaml end to
end, and kill -9 at random moments while rows keep changing — the log holds every committed
change exactly once, in order."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from log.embedded import EmbeddedLog
from tests.integration.mysql.pipeline import Database, Pipeline, wait_until
from tests.integration.mysql.test_snapshot import (
    assert_exactly_once,
    fill,
    table_state,
    writer,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CHANGEHUB = [sys.executable, "-m", "hub.cli"]


def env_for(db: Database) -> dict[str, str]:
    s = db.server
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MYSQL_URL": f"mysql://{s.user}:{s.password}@{s.host}:{s.port}/",
        "MYSQL_DATABASE": str(db.name),
    }


def run_until_caught_up(cwd: Path, config: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        [*CHANGEHUB, "run", str(config), "--until-caught-up"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_mysql_to_duckdb_config_mirrors_the_database(db: Database, tmp_path: Path) -> None:
    db.execute(
        "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(20), "
        "amount DECIMAL(12,2), placed DATETIME(3), tags SET('new','vip'))"
    )
    db.executemany(
        "INSERT INTO orders VALUES (%s, %s, %s, %s, %s)",
        [(i, f"c{i % 7}", f"{i * 3}.25", "2024-05-06 07:08:09.123", "new") for i in range(1, 51)],
    )
    config = ROOT / "configs" / "mysql-to-duckdb.yaml"
    env = env_for(db)
    run_until_caught_up(tmp_path, config, env)
    db.execute("UPDATE orders SET customer = 'changed' WHERE id <= 10")
    db.execute("DELETE FROM orders WHERE id > 40")
    db.execute("INSERT INTO orders VALUES (99, 'late', 1.50, NULL, '')")
    run_until_caught_up(tmp_path, config, env)
    warehouse = tmp_path / "data" / "mysql-to-duckdb" / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        got = {
            r[0]: (r[1], str(r[2]))
            for r in con.execute("SELECT id, customer, amount FROM orders").fetchall()
        }
    finally:
        con.close()
    expected = {r[0]: (r[1], str(r[2])) for r in db.rows("SELECT id, customer, amount FROM orders")}
    assert got == expected


KILL_PIPELINE = """
log: {{backend: embedded, path: ./log}}
api: {{enabled: false}}
sources:
  - name: shop
    type: mariadb
    url: ${{MYSQL_URL}}
    databases: ["{db}"]
    snapshot_chunk_size: 300
    max_batch_events: 500
    heartbeat_interval: 500ms
"""


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    db: Database, tmp_path: Path
) -> None:
    fill(db)
    (tmp_path / "pipeline.yaml").write_text(KILL_PIPELINE.format(db=db.name))
    env = env_for(db)
    rng = random.Random(7)
    log_path = tmp_path / "log"
    hub_log = tmp_path / "hub.log"
    hub_log.touch()
    with writer(db, seed=3):
        for run in range(1, 21):
            with open(hub_log, "ab") as out:
                hub = subprocess.Popen(
                    [*CHANGEHUB, "run", "pipeline.yaml"], cwd=tmp_path, env=env,
                    stdout=subprocess.DEVNULL, stderr=out,
                )  # fmt: skip
            try:
                wait_until(
                    lambda n=run, h=hub: (
                        hub_log.read_text().count("changehub running") >= n  # type: ignore[misc]
                        or h.poll() is not None
                    ),
                    "the hub to start",
                    # A hub's start (imports, server checks) took 24 s at load 40 on 2 cores.
                    deadline_s=90,
                )
                time.sleep(rng.uniform(0.05, 1.0))  # the random moment of the crash, not a wait
                assert hub.poll() is None, hub_log.read_text()[-3000:]
            finally:  # killed on a failure too: a failed run must not leave a hub running
                hub.send_signal(signal.SIGKILL)
                hub.wait(timeout=30)
    run_until_caught_up(tmp_path, tmp_path / "pipeline.yaml", env)
    log = EmbeddedLog(log_path)
    try:
        p = Pipeline(tmp_path / "unused", Pipeline.config_placeholder(db), log=log)
        topic = f"shop.{db.name}.items"
        assert_exactly_once(p, topic)
        assert p.state(topic) == table_state(db)
    finally:
        log.close()
