"""configs/pg-to-warehouse.yaml end to end through the real ``changehub`` CLI: Postgres into a
DuckDB warehouse (upsert tables, an orders history table, a customers SCD2 dimension), with a
kill -9 of the hub while it streams; afterwards every table says exactly what happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.fixtures.services import PostgresServer
from tests.integration.postgres.conftest import _database
from tests.integration.postgres.pipeline import Database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "configs" / "pg-to-warehouse.yaml"
CHANGEHUB = [sys.executable, "-m", "hub.cli"]
WAREHOUSE = Path("data/pg-to-warehouse/warehouse.duckdb")


@pytest.fixture
def db(postgres: PostgresServer) -> Iterator[Database]:
    yield from _database(postgres, postgres.dsn)


def env_for(db: Database) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PG_DSN": db.dsn}


def run_until_caught_up(cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run([*CHANGEHUB, "run", str(CONFIG), "--until-caught-up"], cwd=cwd,
                            env=env, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-5000:]


def kill_while_streaming(cwd: Path, env: dict[str, str]) -> None:
    """Start the hub, wait until its sinks have started, kill -9 it."""
    log = cwd / "hub.log"
    with open(log, "wb") as out:
        hub = subprocess.Popen([*CHANGEHUB, "run", str(CONFIG)], cwd=cwd, env=env,
                               stdout=subprocess.DEVNULL, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while "sql sink dimensions: target" not in log.read_text():
            assert hub.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the hub did not start its sinks in 60 s"
            time.sleep(0.05)
    finally:
        hub.send_signal(signal.SIGKILL)
        hub.wait(timeout=30)


def query(cwd: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(cwd / WAREHOUSE), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_pg_to_warehouse_config_keeps_tables_history_and_dimension_exact_through_a_kill(
    db: Database, tmp_path: Path
) -> None:
    db.execute("CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL)")
    db.execute("CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, note text)")
    db.execute("INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 20) g")
    db.execute("INSERT INTO orders SELECT g, g % 20 + 1, 'o' || g FROM generate_series(1, 200) g")
    env = env_for(db)
    run_until_caught_up(tmp_path, env)  # the snapshot: 'r' events

    # Changes while the hub is down, then a kill -9 while it catches up on them, then more.
    db.execute("UPDATE orders SET note = note || '+' WHERE id % 3 = 0")  # 66 updates
    db.execute("DELETE FROM orders WHERE id % 10 = 1")  # 20 deletes
    db.execute("UPDATE customers SET name = name || ' v2' WHERE id <= 10")
    db.execute("DELETE FROM customers WHERE id IN (19, 20)")
    kill_while_streaming(tmp_path, env)
    db.execute("INSERT INTO orders SELECT g, 1, 'new' || g FROM generate_series(201, 230) g")
    db.execute("ALTER TABLE orders ADD COLUMN status text")
    db.execute("UPDATE orders SET status = 'paid' WHERE id BETWEEN 195 AND 205")  # 11
    db.execute("UPDATE customers SET name = name || ' v3' WHERE id <= 5")
    db.execute("INSERT INTO customers VALUES (19, 'c19 again')")
    run_until_caught_up(tmp_path, env)

    # Upsert: the tables as they are.
    assert query(tmp_path, "SELECT id, customer_id, note, status FROM orders ORDER BY id") == \
        db.rows("SELECT id, customer_id, note, status FROM orders ORDER BY id")
    assert query(tmp_path, "SELECT id, name FROM customers ORDER BY id") == \
        db.rows("SELECT id, name FROM customers ORDER BY id")

    # History: one row per change, none twice despite the kill; the last one per key is the
    # row as it is (or a delete).
    ops = dict(query(tmp_path, "SELECT _op, count(*) FROM orders_history GROUP BY _op"))
    assert ops == {"r": 200, "u": 66 + 11, "d": 20, "c": 30}
    assert query(tmp_path, "SELECT count(DISTINCT _position) FROM orders_history "
                           "WHERE _op <> 'r'") == [(66 + 11 + 20 + 30,)]
    last = query(tmp_path, """
        SELECT id, customer_id, note, status FROM orders_history
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY _offset DESC) = 1 AND _op <> 'd'
        ORDER BY id""")
    assert last == db.rows("SELECT id, customer_id, note, status FROM orders ORDER BY id")

    # SCD2: one current version per live customer, equal to it; every version but the
    # current one closed when the next began.
    current = query(tmp_path, "SELECT id, name FROM customers_dim WHERE _is_current ORDER BY id")
    assert current == db.rows("SELECT id, name FROM customers ORDER BY id")
    versions = dict(query(tmp_path, "SELECT id, count(*) FROM customers_dim GROUP BY id"))
    assert versions == {i: 1 + (i <= 10) + (i <= 5) + (i == 19) for i in range(1, 21)}
    gaps = query(tmp_path, """
        SELECT id FROM (
            SELECT id, _valid_to, _is_current,
                   lead(_valid_from) OVER (PARTITION BY id ORDER BY _offset) AS next_from
            FROM customers_dim)
        WHERE (next_from IS NOT NULL AND _valid_to IS DISTINCT FROM next_from)
           OR (_is_current AND _valid_to IS NOT NULL)""")
    assert gaps == [(19,)]  # deleted, and back later: no version between
    closed_by_delete = query(tmp_path, "SELECT id FROM customers_dim WHERE id = 20")
    assert closed_by_delete and not query(
        tmp_path, "SELECT id FROM customers_dim WHERE id = 20 AND _is_current")
