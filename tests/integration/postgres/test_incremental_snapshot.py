"""Incremental snapshots (DBLog watermarks) against a real PostgreSQL: on demand, for tables
added later, resumed after a stop, all while writers change the table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from connectors.source.postgres.incremental_snapshot import request_snapshot
from hub.errors import UsageError
from tests.integration.postgres.pipeline import Database, Pipeline, config, table_state
from tests.integration.postgres.test_snapshot import Writers, caught_up

pytestmark = pytest.mark.integration

TOPIC = "shop.public.items"
ROWS = "SELECT id, name, qty FROM items"


@pytest.fixture
def items(db: Database) -> Database:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)")
    db.execute("INSERT INTO items SELECT g, 'row ' || g, g FROM generate_series(1, 3000) g")
    return db


def incremental_done(p: Pipeline) -> bool:
    checkpoint = p.log.last_checkpoint("shop")
    return checkpoint is not None and "incremental" not in checkpoint


def reads(p: Pipeline, topic: str = TOPIC) -> Counter[int]:
    return Counter(e["after"]["id"] for e in p.events(topic) if e["op"] == "r")


def test_a_requested_snapshot_reads_the_table_while_writers_change_it(
    items: Database, log_dir: Path
) -> None:
    # Chunks as big as the table: writers commit inside the windows (during the reads).
    cfg = config(items, snapshot="never", snapshot_chunk_size=3000)
    p = Pipeline(log_dir, cfg)
    try:
        p.start()
        with Writers(items, seed=3) as writers:
            request_snapshot(cfg)
            p.run_until(
                lambda: len(reads(p)) > 0 and incremental_done(p),
                "the incremental snapshot to finish",
                120,
            )
            p.run_until(lambda: writers.writes > 200, "more writes")
        caught_up(p, items, 999_999)
        # Nothing came before the request but the writers' changes: the reads filled the rest.
        assert p.state(TOPIC) == table_state(items, ROWS)
        assert max(reads(p).values()) == 1
        events = p.events(TOPIC)
        assert all(e["source"]["snapshot"] == "incremental" for e in events if e["op"] == "r")
    finally:
        p.close()


def test_a_table_added_to_the_config_is_read_on_the_next_start(
    items: Database, log_dir: Path
) -> None:
    items.execute("CREATE TABLE extra (id int PRIMARY KEY, v text)")
    items.execute("INSERT INTO extra SELECT g, 'x' FROM generate_series(1, 700) g")
    p = Pipeline(log_dir, config(items, snapshot_chunk_size=300))
    try:
        p.start()
        p.run_until(lambda: len(p.events(TOPIC)) == 3000, "the initial snapshot")
        p.stop()
        p.config = config(items, tables=["public.items", "public.extra"], snapshot_chunk_size=300)
        p.start()
        items.execute("UPDATE extra SET v = 'changed' WHERE id = 5")
        p.run_until(
            lambda: incremental_done(p) and len(reads(p, "shop.public.extra")) > 0,
            "the new table's snapshot",
            60,
        )
        caught_up(p, items, 999_999)
        assert p.state("shop.public.extra") == table_state(items, "SELECT id, v FROM extra")
        assert len(p.events(TOPIC)) == 3001  # the old table is not read again
    finally:
        p.close()


def test_an_interrupted_incremental_snapshot_resumes_after_its_last_chunk(
    items: Database, log_dir: Path
) -> None:
    cfg = config(items, snapshot="never", snapshot_chunk_size=200)
    p = Pipeline(log_dir, cfg)
    try:
        p.start()
        request_snapshot(cfg, ["public.items"])
        p.run_until(lambda: len(reads(p)) >= 600, "a few chunks")
        p.stop()
        items.execute("DELETE FROM items WHERE id IN (100, 2900)")
        items.execute("UPDATE items SET qty = -1 WHERE id IN (101, 2901)")
        p.start()
        p.run_until(lambda: incremental_done(p), "the rest of the snapshot", 60)
        caught_up(p, items, 999_999)
        assert p.state(TOPIC) == table_state(items, ROWS)
        assert max(reads(p).values()) == 1
    finally:
        p.close()


def test_a_request_for_a_table_not_captured_is_refused(items: Database) -> None:
    with pytest.raises(UsageError, match=r"does not capture public\.nope"):
        request_snapshot(config(items), ["public.nope"])
