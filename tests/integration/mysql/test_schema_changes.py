"""ALTER TABLE mid-stream, new tables: each event decoded with the columns it was written
with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.mysql.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration


def test_events_before_and_after_alter_table_keep_their_own_columns(
    db: Database, log_dir: Path
) -> None:
    db.execute("CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10), b INT)")
    p = Pipeline(log_dir, config(db, snapshot="never"))
    try:
        p.start()
        # Written before the reader sees them: the binlog, not the catalog, names the columns.
        db.execute("INSERT INTO t VALUES (1, 'x', 10)")
        db.execute("ALTER TABLE t DROP COLUMN b, ADD COLUMN c JSON AFTER a")
        db.execute("INSERT INTO t VALUES (2, 'y', '{\"k\": [1]}')")
        db.execute("ALTER TABLE t CHANGE a a2 VARCHAR(10)")
        db.execute("UPDATE t SET a2 = 'z' WHERE id = 2")
        topic = p.topic(db, "t")
        p.run_until(lambda: len(p.events(topic)) >= 3, "3 events")
        first, second, third = p.events(topic)
        assert first["after"] == {"id": 1, "a": "x", "b": 10}
        assert second["after"] == {"id": 2, "a": "y", "c": {"k": [1]}}
        assert third["before"] == {"id": 2, "a2": "y", "c": {"k": [1]}}
        assert third["after"] == {"id": 2, "a2": "z", "c": {"k": [1]}}
    finally:
        p.close()


def test_a_table_created_while_streaming_is_captured(db: Database, log_dir: Path) -> None:
    db.execute("CREATE TABLE old (id INT PRIMARY KEY)")
    p = Pipeline(log_dir, config(db))
    try:
        p.start()
        db.execute("CREATE TABLE fresh (id INT PRIMARY KEY, name VARCHAR(5))")
        db.execute("INSERT INTO fresh VALUES (1, 'n')")
        topic = p.topic(db, "fresh")
        p.run_until(lambda: len(p.events(topic)) >= 1, "the new table's insert")
        assert p.events(topic)[0]["after"] == {"id": 1, "name": "n"}
    finally:
        p.close()


def test_a_primary_key_change_is_a_delete_and_a_create(db: Database, log_dir: Path) -> None:
    db.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    db.execute("INSERT INTO t VALUES (1, 1)")
    p = Pipeline(log_dir, config(db, snapshot="never"))
    try:
        p.start()
        db.execute("UPDATE t SET id = 2 WHERE id = 1")
        topic = p.topic(db, "t")
        p.run_until(lambda: len(p.records(topic)) >= 3, "delete, tombstone, create")
        assert p.state(topic) == {2: {"id": 2, "v": 1}}
        assert [v and v["op"] for _, v in p.records(topic)] == ["d", None, "c"]
    finally:
        p.close()
