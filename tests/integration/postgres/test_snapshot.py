"""The initial snapshot and its hand-over to streaming, against a real PostgreSQL."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from connectors.source.postgres import snapshot
from connectors.source.postgres.slot import drop_slot
from hub.errors import FatalError
from tests.integration.postgres.pipeline import Database, Pipeline, config, table_state

pytestmark = pytest.mark.integration

TOPIC = "shop.public.items"
ROWS = "SELECT id, name, qty FROM items"


@pytest.fixture
def items(db: Database) -> Database:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)")
    db.execute("INSERT INTO items SELECT g, 'row ' || g, g FROM generate_series(1, 3000) g")
    return db


class Writers:
    """Inserts, updates and deletes on random keys from another connection until stopped."""

    def __init__(self, db: Database, seed: int) -> None:
        self._db = db
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.writes = 0
        self.error: BaseException | None = None

    def __enter__(self) -> Writers:
        self._thread.start()
        return self

    def _run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self._db.dsn, autocommit=True) as conn:
                next_id = 100_000
                while not self._stop.is_set():
                    action = self._rng.random()
                    key = self._rng.randint(1, 3000)
                    with conn.transaction():
                        if action < 0.4:
                            conn.execute(
                                "UPDATE items SET qty = qty + 1, name = %s WHERE id = %s",
                                (f"upd {self.writes}", key),
                            )
                        elif action < 0.6:
                            conn.execute("DELETE FROM items WHERE id = %s", (key,))
                        elif action < 0.8:
                            conn.execute("INSERT INTO items VALUES (%s, 'new', 0)", (next_id,))
                            next_id += 1
                        else:
                            conn.execute(
                                "INSERT INTO items VALUES (%s, 'back', 1) "
                                "ON CONFLICT (id) DO UPDATE SET qty = items.qty + 10",
                                (key,),
                            )
                    self.writes += 1
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error is not None:
            raise self.error

    def __exit__(self, *exc: object) -> None:
        self.stop()


def snapshot_done(p: Pipeline) -> None:
    p.run_until(
        lambda: "snapshot" not in (p.log.last_checkpoint("shop") or {"snapshot": 1}),
        "the end of the snapshot",
    )


def caught_up(p: Pipeline, db: Database, marker: int) -> None:
    """Commit a marker row and run until it is in the log: everything before it is too."""
    db.execute("INSERT INTO items VALUES (%s, 'marker', 0)", (marker,))
    p.run_until(lambda: marker in p.state(TOPIC), "the marker row")


@pytest.mark.parametrize("reader", ["in process", "worker process"])
def test_snapshot_then_stream_under_concurrent_writes_rebuilds_the_table(
    items: Database, log_dir: Path, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if reader == "worker process":  # as for a large table (snapshot_process.py)
        monkeypatch.setattr(snapshot, "PROCESS_MIN_BYTES", 0)
        monkeypatch.setattr(snapshot, "READ_WHILE_WORKER_STARTS", False)  # all by the worker
    p = Pipeline(log_dir, config(items, snapshot_chunk_size=200))
    try:
        with Writers(items, seed=1) as writers:
            p.start()
            snapshot_done(p)
            p.run_until(lambda: writers.writes > 300, "writes after the snapshot")
        caught_up(p, items, 999_999)
        assert p.state(TOPIC) == table_state(items, ROWS)
        reads = Counter(e["after"]["id"] for e in p.events(TOPIC) if e["op"] == "r")
        assert len(reads) >= 2000 and max(reads.values()) == 1
        assert all(e["source"]["snapshot"] == "true" for e in p.events(TOPIC) if e["op"] == "r")
    finally:
        p.close()


def test_a_snapshot_interrupted_by_a_crash_resumes_after_its_last_chunk(
    items: Database, log_dir: Path
) -> None:
    items.execute("INSERT INTO items SELECT g, 'far', 0 FROM generate_series(4001, 4003) g")
    cfg = config(items, snapshot_chunk_size=250)
    p = Pipeline(log_dir, cfg)
    try:
        p.start()
        p.run_until(lambda: p.batches >= 3, "three chunks")
        p.stop()  # a crash: the checkpoint says where the snapshot got to
        checkpoint = p.log.last_checkpoint("shop")
        assert checkpoint is not None
        assert checkpoint["snapshot"]["after"] == ["750"]
        # Meanwhile rows change on both sides of the last key read.
        items.execute("UPDATE items SET qty = -1 WHERE id IN (10, 2000, 4001)")
        items.execute("DELETE FROM items WHERE id IN (20, 2500, 4002)")
        items.execute("INSERT INTO items VALUES (5000, 'late', 5)")
        with Writers(items, seed=2) as writers:
            p.start()
            snapshot_done(p)
            p.run_until(lambda: writers.writes > 100, "some concurrent writes")
        caught_up(p, items, 999_999)
        assert p.state(TOPIC) == table_state(items, ROWS)
        reads = Counter(e["after"]["id"] for e in p.events(TOPIC) if e["op"] == "r")
        assert max(reads.values()) == 1  # no chunk was read twice
        assert all(reads[k] == 1 for k in range(1, 751))
        # Changes made while down: streamed for rows read before the crash; for the rest,
        # in the rows read after it, and not streamed again.
        # (The writers touch keys 1 to 3000 only.)
        ops = changes_by_key(p)
        assert ops[10][:2] == ["r", "u"] and ops[20][:2] == ["r", "d"]
        assert ops[4001] == ["r"] and ops[5000] == ["r"] and 4002 not in ops
    finally:
        p.close()


def changes_by_key(p: Pipeline) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for e in p.events(TOPIC):
        row = e["after"] or e["before"]
        out.setdefault(row["id"], []).append(e["op"])
    return out


def test_mode_never_streams_without_reading_existing_rows(items: Database, log_dir: Path) -> None:
    p = Pipeline(log_dir, config(items, snapshot="never"))
    try:
        p.start()
        items.execute("UPDATE items SET qty = 0 WHERE id = 1")
        p.run_until(lambda: len(p.events(TOPIC)) == 1, "the update")
        assert [e["op"] for e in p.events(TOPIC)] == ["u"]
    finally:
        p.close()


def test_mode_initial_only_reads_once_without_a_slot(items: Database, log_dir: Path) -> None:
    p = Pipeline(log_dir, config(items, snapshot="initial_only", snapshot_chunk_size=1000))
    try:
        p.start()
        p.run_until(lambda: len(p.events(TOPIC)) == 3000, "all rows")
        items.execute("UPDATE items SET qty = 0 WHERE id = 1")
        p.stop()
        p.start()  # a restart after a finished snapshot reads nothing again
        for _ in range(5):
            p.step(0.1)
        assert len(p.events(TOPIC)) == 3000
        assert items.value("SELECT count(*) FROM pg_replication_slots") == 0
    finally:
        p.close()


def test_mode_always_reads_again_on_every_start_and_keeps_streaming(
    items: Database, log_dir: Path
) -> None:
    p = Pipeline(log_dir, config(items, snapshot="always", snapshot_chunk_size=1000))
    try:
        p.start()
        snapshot_done(p)
        p.stop()
        items.execute("DELETE FROM items WHERE id = 3")  # while down
        p.start()
        caught_up(p, items, 999_999)
        events = p.events(TOPIC)
        assert sum(1 for e in events if e["op"] == "r") == 3000 + 2999
        assert any(e["op"] == "d" and e["before"]["id"] == 3 for e in events)
        assert p.state(TOPIC) == table_state(items, ROWS)
    finally:
        p.close()


def test_a_stale_slot_without_a_checkpoint_is_replaced(items: Database, log_dir: Path) -> None:
    items.execute("SELECT pg_create_logical_replication_slot('changehub_shop', 'pgoutput')")
    items.execute("UPDATE items SET qty = 7 WHERE id = 1")  # in the old slot, before the log
    p = Pipeline(log_dir, config(items, snapshot_chunk_size=1000))
    try:
        p.start()
        caught_up(p, items, 999_999)
        assert p.state(TOPIC) == table_state(items, ROWS)
        assert sum(1 for e in p.events(TOPIC) if e["op"] == "u") == 0
    finally:
        p.close()


def test_a_lost_slot_fails_with_how_to_resync(items: Database, log_dir: Path) -> None:
    p = Pipeline(log_dir, config(items, snapshot_chunk_size=1000))
    try:
        p.start()
        p.run_until(lambda: len(p.events(TOPIC)) == 3000, "the snapshot")
        p.stop()
        with psycopg.connect(items.dsn, autocommit=True) as conn:
            drop_slot(conn, "changehub_shop")  # waits for the walsender to let go
        with pytest.raises(FatalError, match=r"does not exist any more.*snapshot: always"):
            p.start()
    finally:
        p.close()
