"""Streaming from a real MariaDB binlog into the embedded log."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.envelope import decode_key
from tests.integration.mysql.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration


def test_inserts_updates_deletes_arrive_in_order_with_keys_and_source(
    db: Database, log_dir: Path
) -> None:
    db.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
    p = Pipeline(log_dir, config(db, snapshot="never"))
    try:
        p.start()
        db.execute("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        db.execute("UPDATE items SET name = 'bb' WHERE id = 2")
        db.execute("DELETE FROM items WHERE id = 1")
        topic = p.topic(db, "items")
        p.run_until(lambda: len(p.records(topic)) >= 5, "5 records")
        records = p.records(topic)
        ops = [(decode_key(k), v and v["op"]) for k, v in records]
        assert ops == [
            ({"id": 1}, "c"),
            ({"id": 2}, "c"),
            ({"id": 2}, "u"),
            ({"id": 1}, "d"),
            ({"id": 1}, None),
        ]
        update = records[2][1]
        assert update is not None
        assert update["before"] == {"id": 2, "name": "b"}
        assert update["after"] == {"id": 2, "name": "bb"}
        src = update["source"]
        assert src["connector"] == "mysql" and src["db"] == db.name and src["table"] == "items"
        assert src["snapshot"] == "false" and src["gtid"].startswith("0-1-")
        assert update["transaction"]["id"] == src["gtid"]
    finally:
        p.close()


def test_light_row_events_decode_alike_by_the_fast_decoder_and_by_the_library(
    db: Database, log_dir: Path
) -> None:
    """Row events are read without mysql-replication's packet wrapper (reader.py); with
    ``fast_decoder: false`` the library decodes their rows from the same packet when asked,
    and both sources write the same changes."""
    db.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), n BIGINT)")
    pipelines = [
        Pipeline(log_dir / name, config(db, name=name, snapshot="never", fast_decoder=fast))
        for name, fast in (("fast", True), ("lib", False))
    ]
    try:
        sources = [p.start() for p in pipelines]
        db.execute("INSERT INTO items VALUES (1, 'a', 10), (2, NULL, -3)")
        db.execute("UPDATE items SET name = 'bb', n = n * 2 WHERE id = 2")
        db.execute("DELETE FROM items WHERE id = 1")
        got = []
        for p in pipelines:
            topic = p.topic(db, "items")
            p.run_until(lambda p=p, topic=topic: len(p.records(topic)) >= 5, "5 records")
            got.append(
                [(k, v and (v["op"], v["before"], v["after"])) for k, v in p.records(topic)]
            )
        assert got[0] == got[1]
        assert got[0][2][1] == ("u", {"id": 2, "name": None, "n": -3},
                                {"id": 2, "name": "bb", "n": -6})  # fmt: skip
        for source in sources:
            binlog = source._binlog
            assert binlog is not None and binlog._reader is not None
            assert binlog._reader.light_row_events >= 3
    finally:
        for p in pipelines:
            p.close()


def test_a_table_map_seen_again_is_reused_until_a_ddl_changes_the_table(
    db: Database, log_dir: Path
) -> None:
    db.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
    p = Pipeline(log_dir, config(db, snapshot="never"))
    try:
        source = p.start()
        for i in range(1, 5):  # one transaction, and so one TableMap event, each
            db.execute("INSERT INTO items VALUES (%s, %s)", (i, f"n{i}"))
        topic = p.topic(db, "items")
        p.run_until(lambda: len(p.records(topic)) >= 4, "4 records")
        binlog = source._binlog
        assert binlog is not None
        assert binlog.table_maps_reused == 3  # parsed for the first transaction only
        # Same table id and types, new name: the map must be read again, not reused.
        db.execute("ALTER TABLE items CHANGE name label VARCHAR(20)")
        db.execute("INSERT INTO items VALUES (5, 'n5')")
        p.run_until(lambda: len(p.records(topic)) >= 5, "5 records")
        last = p.records(topic)[-1][1]
        assert last is not None and last["after"] == {"id": 5, "label": "n5"}
        assert binlog.table_maps_reused == 3
    finally:
        p.close()
