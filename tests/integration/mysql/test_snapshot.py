"""The snapshot and the hand-over to streaming: no gap, no duplicate, under concurrent
writes, also when the snapshot is interrupted and resumed."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.mysql.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration

ROWS = 2000


@contextmanager
def writer(db: Database, *, seed: int) -> Iterator[threading.Event]:
    """Updates (v + 1), inserts and deletes in a thread until the block ends."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        rng = random.Random(seed)
        conn = Database(server=db.server, name=db.name)
        next_id = ROWS + 1
        try:
            while not stop.is_set():
                action = rng.random()
                if action < 0.7:
                    conn.execute(
                        "UPDATE items SET v = v + 1 WHERE id = %s", (rng.randint(1, ROWS),)
                    )
                elif action < 0.9:
                    conn.execute("INSERT INTO items VALUES (%s, 0)", (next_id,))
                    next_id += 1
                else:
                    conn.execute("DELETE FROM items WHERE id = %s", (rng.randint(1, next_id),))
        except BaseException as exc:
            failure.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)
    if failure:
        raise failure[0]


def fill(db: Database) -> None:
    db.execute("CREATE TABLE items (id INT PRIMARY KEY, v INT NOT NULL)")
    db.executemany("INSERT INTO items VALUES (%s, 0)", [(i,) for i in range(1, ROWS + 1)])


def table_state(db: Database) -> dict[Any, dict[str, Any]]:
    return {r[0]: {"id": r[0], "v": r[1]} for r in db.rows("SELECT id, v FROM items")}


def assert_exactly_once(p: Pipeline, topic: str) -> None:
    """Per key, every version once and none skipped: v goes up by one per update."""
    last: dict[int, int] = {}
    for event in p.events(topic):
        if event["op"] == "d":
            last.pop(event["before"]["id"], None)
            continue
        row = event["after"]
        if event["op"] in ("r", "c") or row["id"] not in last:
            assert row["id"] not in last, f"a second snapshot/create of key {row['id']}: {event}"
        else:
            assert row["v"] == last[row["id"]] + 1, f"gap or duplicate at {event}"
        last[row["id"]] = row["v"]


def test_snapshot_hands_over_to_the_stream_without_gap_or_duplicate(
    db: Database, log_dir: Path
) -> None:
    fill(db)
    p = Pipeline(log_dir, config(db, snapshot_chunk_size=100))
    topic = p.topic(db, "items")
    try:
        with writer(db, seed=1):
            p.start()
            p.run_until(
                lambda: (
                    p.source is not None
                    and p.source.last_committed is not None
                    and p.source.last_committed["snapshot"] is None
                ),
                "the end of the snapshot",
            )
        expected = table_state(db)
        p.run_until(lambda: p.state(topic) == expected, "the log to equal the table")
        assert_exactly_once(p, topic)
        assert sum(e["op"] == "r" for e in p.events(topic)) >= ROWS * 0.8
    finally:
        p.close()


def test_an_interrupted_snapshot_resumes_after_its_last_chunk_without_duplicates(
    db: Database, log_dir: Path
) -> None:
    fill(db)
    # One chunk per batch: the stop below must land mid-snapshot. With batches of up to
    # 10,000 events a fast reader could hand over the whole table in the first batch.
    cfg = config(db, snapshot_chunk_size=100, max_batch_events=100)
    p = Pipeline(log_dir, cfg)
    topic = p.topic(db, "items")
    try:
        with writer(db, seed=2):
            p.start()
            p.run_until(lambda: len(p.events(topic)) >= 500, "a few chunks")
            p.stop()  # as if the process died here: the log keeps what it has
            reads_before = sum(e["op"] == "r" for e in p.events(topic))
            assert reads_before < ROWS
            p.start()
            p.run_until(
                lambda: (
                    p.source is not None
                    and p.source.last_committed is not None
                    and p.source.last_committed["snapshot"] is None
                ),
                "the end of the resumed snapshot",
            )
        expected = table_state(db)
        p.run_until(lambda: p.state(topic) == expected, "the log to equal the table")
        assert_exactly_once(p, topic)
    finally:
        p.close()


def test_initial_only_reads_the_tables_and_then_stays_idle(db: Database, log_dir: Path) -> None:
    fill(db)
    p = Pipeline(log_dir, config(db, snapshot="initial_only", snapshot_chunk_size=700))
    topic = p.topic(db, "items")
    try:
        p.start()
        p.run_until(lambda: len(p.events(topic)) == ROWS, "the snapshot")
        db.execute("UPDATE items SET v = 5 WHERE id = 1")
        assert p.step(timeout=1.0) is None
        assert all(e["op"] == "r" for e in p.events(topic))
    finally:
        p.close()
