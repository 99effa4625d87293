"""Connection loss, server restart, big transactions split across batches, heartbeats."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.services import MariaDBServer, ServiceFactory
from tests.integration.mysql.conftest import make_database
from tests.integration.mysql.pipeline import Database, Pipeline, config, wait_until

pytestmark = pytest.mark.integration


def created_ids(p: Pipeline, topic: str) -> list[int]:
    return [e["after"]["id"] for e in p.events(topic) if e["op"] == "c"]


def dump_threads(root: Database, user: str) -> list[int]:
    return [
        int(r[0])
        for r in root.rows("SHOW PROCESSLIST")
        if str(r[4]).startswith("Binlog Dump") and r[1] == user
    ]


def test_a_killed_binlog_connection_is_reopened_without_duplicates(
    db: Database, log_dir: Path
) -> None:
    db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    p = Pipeline(log_dir, config(db, snapshot="never"))
    root = Database.root(db.server)
    try:
        source = p.start()
        topic = p.topic(db, "t")
        db.executemany("INSERT INTO t VALUES (%s)", [(i,) for i in range(1, 51)])
        p.run_until(lambda: len(created_ids(p, topic)) == 50, "50 inserts")
        for thread in dump_threads(root, db.server.user):
            root.execute(f"KILL {thread}")
        db.executemany("INSERT INTO t VALUES (%s)", [(i,) for i in range(51, 101)])
        p.run_until(lambda: len(created_ids(p, topic)) >= 100, "100 inserts")
        assert created_ids(p, topic) == list(range(1, 101))
        assert source._binlog is not None and source._binlog.reconnects >= 1
    finally:
        p.close()
        root.close()


def test_streaming_survives_a_server_restart(start_service: ServiceFactory, log_dir: Path) -> None:
    server = start_service("mariadb")
    assert isinstance(server, MariaDBServer)
    databases = make_database(server)
    db = next(databases)
    db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    p = Pipeline(log_dir, config(db, snapshot="never", reconnect_timeout="90s"))
    try:
        p.start()
        topic = p.topic(db, "t")
        db.executemany("INSERT INTO t VALUES (%s)", [(i,) for i in range(1, 101)])
        p.run_until(lambda: len(created_ids(p, topic)) == 100, "100 inserts")
        db.close()
        server.stop()
        restarted = server.start()
        assert restarted.port == server.port, "the server came back on another port"
        db.grant()
        db.executemany("INSERT INTO t VALUES (%s)", [(i,) for i in range(101, 201)])
        p.run_until(lambda: len(created_ids(p, topic)) >= 200, "200 inserts", deadline_s=90)
        assert created_ids(p, topic) == list(range(1, 201))
    finally:
        p.close()
        databases.close()


def test_a_transaction_larger_than_a_batch_is_split_and_resumed_exactly(
    db: Database, log_dir: Path
) -> None:
    db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    cfg = config(db, snapshot="never", max_batch_events=100)
    p = Pipeline(log_dir, cfg)
    topic = p.topic(db, "t")
    try:
        p.start()
        db.executemany("INSERT INTO t VALUES (%s)", [(i,) for i in range(1, 1001)])
        p.run_until(lambda: len(created_ids(p, topic)) >= 300, "part of the transaction")
        p.stop()
        cp = p.log.last_checkpoint(cfg.name)
        assert cp is not None and cp["skip"] > 0 and cp["skip_tx"] is not None
        p.start()
        p.run_until(lambda: len(created_ids(p, topic)) >= 1000, "the whole transaction")
        p.step(timeout=0.5)
        assert created_ids(p, topic) == list(range(1, 1001))
    finally:
        p.close()


def test_writes_elsewhere_move_the_checkpoint_through_heartbeats(
    db: Database, log_dir: Path, mariadb: MariaDBServer
) -> None:
    db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    others = make_database(mariadb)
    other = next(others)
    cfg = config(db, snapshot="never", heartbeat_interval="300ms")
    p = Pipeline(log_dir, cfg)
    try:
        p.start()
        assert p.step(timeout=0.5) is None  # nothing moved yet: no heartbeat batch
        other.execute("CREATE TABLE elsewhere (id INT PRIMARY KEY)")
        other.execute("INSERT INTO elsewhere VALUES (1)")
        target = str(db.rows("SELECT @@gtid_binlog_pos")[0][0])
        p.run_until(
            lambda: (p.log.last_checkpoint(cfg.name) or {}).get("gtid") == target,
            f"the checkpoint to reach {target}",
        )
        assert p.log.list_topics() == [] or all(not p.records(t) for t in p.log.list_topics())
    finally:
        p.close()
        others.close()


def test_stop_returns_promptly_while_the_reader_waits(db: Database, log_dir: Path) -> None:
    db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    p = Pipeline(log_dir, config(db, snapshot="never", heartbeat_interval="60s"))
    source = p.start()
    p.step(timeout=0.3)
    thread = source._thread
    p.stop()
    assert thread is not None
    wait_until(lambda: not thread.is_alive(), "the reader thread to end", deadline_s=5)
    p.close()
