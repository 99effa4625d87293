"""Streaming against a real PostgreSQL: events, order, resume, big transactions, schema changes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.postgres.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration

TOPIC = "shop.public.items"


@pytest.fixture
def items(db: Database) -> Database:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)")
    return db


def ops(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["op"], (e["after"] or e["before"] or {}).get("id")) for e in events]


def test_inserts_updates_deletes_and_truncates_arrive_in_commit_order(
    items: Database, log_dir: Path
) -> None:
    p = Pipeline(log_dir, config(items, snapshot="never"))
    try:
        p.start()
        items.execute("INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2)")
        items.execute("UPDATE items SET qty = 5 WHERE id = 1")
        items.execute("DELETE FROM items WHERE id = 2")
        items.execute("TRUNCATE items")
        items.execute("INSERT INTO items VALUES (3, 'c', 3)")
        p.run_until(lambda: len(p.events(TOPIC)) == 6, "six events")
        events = p.events(TOPIC)
        assert ops(events) == [("c", 1), ("c", 2), ("u", 1), ("d", 2), ("t", None), ("c", 3)]
        assert events[2]["after"] == {"id": 1, "name": "a", "qty": 5}
        assert events[2]["before"] is None  # REPLICA IDENTITY DEFAULT sends no old row
        assert events[3]["before"] == {"id": 2}
        # A delete is followed by its tombstone.
        records = p.records(TOPIC)
        delete_at = next(i for i, (_, v) in enumerate(records) if v and v["op"] == "d")
        assert records[delete_at + 1] == (b'{"id":2}', None)
        assert p.state(TOPIC) == {3: {"id": 3, "name": "c", "qty": 3}}
    finally:
        p.close()


def test_every_event_carries_transaction_metadata_and_commit_time(
    items: Database, log_dir: Path
) -> None:
    p = Pipeline(log_dir, config(items, snapshot="never", tables=["public.items", "public.other"]))
    items.execute("CREATE TABLE other (id int PRIMARY KEY)")
    try:
        p.start()
        before_ms = int(time.time() * 1000)
        with items.conn.transaction():
            items.execute("INSERT INTO items VALUES (1, 'a', 1)")
            items.execute("INSERT INTO other VALUES (7)")
            items.execute("INSERT INTO items VALUES (2, 'b', 2)")
        after_ms = int(time.time() * 1000)
        p.run_until(lambda: len(p.events(TOPIC)) == 2, "two events")
        first, second = p.events(TOPIC)
        (other,) = p.events("shop.public.other")
        xid = first["source"]["txId"]
        assert second["source"]["txId"] == other["source"]["txId"] == xid
        assert [e["transaction"] for e in (first, other, second)] == [
            {"id": str(xid), "total_order": 1, "data_collection_order": 1},
            {"id": str(xid), "total_order": 2, "data_collection_order": 1},
            {"id": str(xid), "total_order": 3, "data_collection_order": 2},
        ]
        source = first["source"]
        assert source["connector"] == "postgres" and source["name"] == "shop"
        assert source["db"] == items.name and source["schema"] == "public"
        assert source["table"] == "items" and source["snapshot"] == "false"
        assert first["source"]["lsn"] < second["source"]["lsn"] <= source["commit_lsn"]
        assert before_ms <= source["ts_ms"] <= after_ms  # the commit time
        assert source["ts_ms"] <= first["ts_ms"]  # the time the source processed it
    finally:
        p.close()


def test_restart_from_the_log_checkpoint_neither_loses_nor_repeats(
    items: Database, log_dir: Path
) -> None:
    cfg = config(items, snapshot="never", max_batch_events=3)
    p = Pipeline(log_dir, cfg)
    try:
        p.start()
        for i in range(20):
            items.execute("INSERT INTO items VALUES (%s, 'x', 0)", (i,))
        p.run_until(lambda: len(p.events(TOPIC)) >= 7, "some events")
        p.stop()  # events may be waiting in the source's queue: they must come again
        for i in range(20, 30):
            items.execute("INSERT INTO items VALUES (%s, 'x', 0)", (i,))
        p.start()
        p.run_until(lambda: len(p.events(TOPIC)) >= 30, "all events")
        for _ in range(5):
            p.step(0.1)
        assert [e["after"]["id"] for e in p.events(TOPIC)] == list(range(30))
    finally:
        p.close()


def test_a_transaction_bigger_than_a_batch_is_split_and_resumes_mid_transaction(
    items: Database, log_dir: Path
) -> None:
    cfg = config(items, snapshot="never", max_batch_events=100)
    p = Pipeline(log_dir, cfg)
    try:
        p.start()
        items.execute("INSERT INTO items SELECT g, 'big', g FROM generate_series(1, 1000) g")
        p.run_until(lambda: len(p.events(TOPIC)) >= 300, "part of the transaction")
        checkpoint = p.log.last_checkpoint("shop")
        assert checkpoint is not None and "txn" in checkpoint  # stopped inside it
        p.stop()
        items.execute("INSERT INTO items VALUES (1001, 'after', 0)")
        p.start()
        p.run_until(lambda: len(p.events(TOPIC)) >= 1001, "the rest")
        for _ in range(5):
            p.step(0.1)
        events = p.events(TOPIC)
        assert [e["after"]["id"] for e in events] == list(range(1, 1002))
        orders = [e["transaction"]["total_order"] for e in events[:1000]]
        assert orders == list(range(1, 1001))
        assert "txn" not in (p.log.last_checkpoint("shop") or {})
    finally:
        p.close()


def test_added_dropped_and_renamed_columns_apply_without_restart(
    items: Database, log_dir: Path
) -> None:
    p = Pipeline(log_dir, config(items, snapshot="never"))
    try:
        p.start()
        items.execute("INSERT INTO items VALUES (1, 'a', 1)")
        items.execute("ALTER TABLE items ADD COLUMN price numeric(10,2)")
        items.execute("INSERT INTO items VALUES (2, 'b', 2, 9.99)")
        items.execute("ALTER TABLE items DROP COLUMN qty")
        items.execute("INSERT INTO items VALUES (3, 'c', 1.50)")
        items.execute("ALTER TABLE items RENAME COLUMN name TO title")
        items.execute("INSERT INTO items VALUES (4, 'd', 2.00)")
        p.run_until(lambda: len(p.events(TOPIC)) == 4, "four events")
        assert [e["after"] for e in p.events(TOPIC)] == [
            {"id": 1, "name": "a", "qty": 1},
            {"id": 2, "name": "b", "qty": 2, "price": "9.99"},
            {"id": 3, "name": "c", "price": "1.50"},
            {"id": 4, "title": "d", "price": "2.00"},
        ]
    finally:
        p.close()


def test_a_table_added_to_the_publication_is_captured_from_its_next_change(
    items: Database, log_dir: Path
) -> None:
    p = Pipeline(log_dir, config(items, snapshot="never"))
    try:
        p.start()
        items.execute("CREATE TABLE later (id int PRIMARY KEY, v text)")
        items.execute("ALTER PUBLICATION changehub_shop ADD TABLE later")
        items.execute("INSERT INTO later VALUES (1, 'x')")
        p.run_until(lambda: len(p.events("shop.public.later")) == 1, "the new table's event")
        assert p.events("shop.public.later")[0]["after"] == {"id": 1, "v": "x"}
    finally:
        p.close()


def test_an_update_of_the_key_deletes_the_old_key_and_creates_the_new(
    items: Database, log_dir: Path
) -> None:
    p = Pipeline(log_dir, config(items, snapshot="never"))
    try:
        p.start()
        items.execute("INSERT INTO items VALUES (1, 'a', 1)")
        items.execute("UPDATE items SET id = 2 WHERE id = 1")
        p.run_until(lambda: len(p.events(TOPIC)) == 3, "three events")
        records = p.records(TOPIC)
        assert [(k, v and v["op"]) for k, v in records] == [
            (b'{"id":1}', "c"),
            (b'{"id":1}', "d"),
            (b'{"id":1}', None),
            (b'{"id":2}', "c"),
        ]
        assert p.state(TOPIC) == {2: {"id": 2, "name": "a", "qty": 1}}
    finally:
        p.close()


def test_replica_identity_full_sends_the_whole_old_row_as_before(
    items: Database, log_dir: Path
) -> None:
    items.execute("ALTER TABLE items REPLICA IDENTITY FULL")
    p = Pipeline(log_dir, config(items, snapshot="never"))
    try:
        p.start()
        items.execute("INSERT INTO items VALUES (1, 'a', 1)")
        items.execute("UPDATE items SET qty = 2")
        items.execute("DELETE FROM items")
        p.run_until(lambda: len(p.events(TOPIC)) == 3, "three events")
        _, update, delete = p.events(TOPIC)
        assert update["before"] == {"id": 1, "name": "a", "qty": 1}
        assert delete["before"] == {"id": 1, "name": "a", "qty": 2}
    finally:
        p.close()
