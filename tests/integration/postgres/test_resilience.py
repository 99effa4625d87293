"""Heartbeats on an idle database, and a Postgres restart in the middle of the stream."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from hub.errors import FatalError, RetriableError
from tests.fixtures.services import PostgresServer, ServiceFactory
from tests.integration.postgres.conftest import _database
from tests.integration.postgres.pipeline import Database, Pipeline, config, wait_until

pytestmark = pytest.mark.integration

TOPIC = "shop.public.items"


def test_an_idle_database_on_a_busy_server_still_advances_its_slot(
    db: Database, postgres: PostgresServer, log_dir: Path
) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY)")
    cfg = config(db, snapshot="never", heartbeat_interval="300ms", heartbeat_action="none")
    p = Pipeline(log_dir, cfg)
    busy = psycopg.connect(postgres.dsn, autocommit=True)  # another database on the server
    table = f"busy_{uuid.uuid4().hex[:8]}"
    try:
        p.start()
        start = db.slot_confirmed("changehub_shop")
        assert start is not None
        busy.execute(f"CREATE TABLE {table} (v text)")
        for _ in range(20):
            busy.execute(
                f"INSERT INTO {table} SELECT repeat('x', 1000) FROM generate_series(1, 500)"
            )
        target = int(busy.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0])  # type: ignore[index]
        p.run_until(
            lambda: (db.slot_confirmed("changehub_shop") or 0) >= target,
            "the slot to be confirmed past the other database's writes",
        )
        assert p.events(TOPIC) == []
        checkpoint = p.log.last_checkpoint("shop")
        assert checkpoint is not None and checkpoint["lsn"] >= target
        assert p.source is not None and p.source.lag is not None
    finally:
        busy.execute(f"DROP TABLE IF EXISTS {table}")
        busy.close()
        p.close()


def test_heartbeat_messages_are_not_events(db: Database, log_dir: Path) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY)")
    cfg = config(db, snapshot="never", heartbeat_interval="200ms", heartbeat_action="message")
    p = Pipeline(log_dir, cfg)
    try:
        p.start()
        start = db.slot_confirmed("changehub_shop") or 0
        p.run_until(
            lambda: (db.slot_confirmed("changehub_shop") or 0) > start,
            "a heartbeat to move the slot",
        )
        db.execute("INSERT INTO items VALUES (1)")
        p.run_until(lambda: len(p.events(TOPIC)) == 1, "the insert")
    finally:
        p.close()


@pytest.fixture
def own_server(start_service: ServiceFactory) -> PostgresServer:
    server = start_service("postgres")
    assert isinstance(server, PostgresServer)
    return server


@pytest.fixture
def own_db(own_server: PostgresServer) -> Iterator[Database]:
    yield from _database(own_server, own_server.dsn)


def test_a_postgres_restart_mid_stream_loses_and_repeats_nothing(
    own_server: PostgresServer, own_db: Database, log_dir: Path
) -> None:
    own_db.execute("CREATE TABLE items (id int PRIMARY KEY, v int)")
    p = Pipeline(log_dir, config(own_db, snapshot="never", max_batch_events=5))
    try:
        p.start()
        for i in range(50):
            own_db.execute("INSERT INTO items VALUES (%s, 0)", (i,))
        p.run_until(lambda: len(p.events(TOPIC)) >= 10, "some events")
        own_db.close()
        # A fast shutdown waits for the walsender, which waits for the source to confirm
        # what it sent; the hub keeps polling meanwhile, so the test does too.
        stopping = threading.Thread(target=own_server.stop)
        stopping.start()
        with pytest.raises(RetriableError):
            wait_until(lambda: False, "the source to notice", step=p.step)
        p.stop()
        stopping.join()
        own_server.start()
        # The hub backs off and restarts a source that failed with a retriable error.
        wait_until(_connects(own_db), "Postgres to accept connections again")
        p.start()
        for i in range(50, 60):
            own_db.execute("INSERT INTO items VALUES (%s, 0)", (i,))
        p.run_until(lambda: len(p.events(TOPIC)) >= 60, "every event")
        for _ in range(5):
            p.step(0.1)
        assert [e["after"]["id"] for e in p.events(TOPIC)] == list(range(60))
    finally:
        p.close()


def _connects(db: Database) -> Callable[[], bool]:
    def check() -> bool:
        try:
            db.value("SELECT 1")
        except psycopg.OperationalError:
            db.close()
            return False
        return True

    return check


def test_the_lag_guard_drops_the_slot_and_fails_when_the_log_falls_behind(
    db: Database, postgres: PostgresServer, log_dir: Path
) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY)")
    cfg = config(db, snapshot="never", heartbeat_interval="200ms", max_lag_bytes="256KB")
    p = Pipeline(log_dir, cfg)
    busy = psycopg.connect(postgres.dsn, autocommit=True)
    table = f"busy_{uuid.uuid4().hex[:8]}"
    try:
        p.start()
        # The hub stalls (nobody appends), and the server writes a lot of WAL meanwhile.
        busy.execute(f"CREATE TABLE {table} (v text)")
        busy.execute(f"INSERT INTO {table} SELECT repeat('x', 1000) FROM generate_series(1, 2000)")
        wait_until(lambda: db.slot_confirmed("changehub_shop") is None, "the slot to be dropped")
        with pytest.raises(FatalError, match=r"max_lag_bytes .* dropped .*snapshot: always"):
            wait_until(lambda: False, "the source to fail", step=p.step)
    finally:
        busy.execute(f"DROP TABLE IF EXISTS {table}")
        busy.close()
        p.close()
