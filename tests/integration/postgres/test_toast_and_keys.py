"""Unchanged TOASTed values and tables without a primary key, against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import SchemaError
from tests.integration.postgres.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration

TOPIC = "shop.public.docs"
BIG = "SELECT string_agg(md5(g::text), '') FROM generate_series(1, 300) g"  # 9600 chars


@pytest.fixture
def docs(db: Database) -> Database:
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, views int)")
    # Stored out of line without compression: always TOASTed, so updates that leave it
    # alone send the 'unchanged' marker instead of the value.
    db.execute("ALTER TABLE docs ALTER body SET STORAGE EXTERNAL")
    return db


def body(db: Database) -> str:
    return str(db.value(BIG))


def test_unchanged_toasted_values_are_filled_from_the_log(docs: Database, log_dir: Path) -> None:
    docs.execute(f"INSERT INTO docs VALUES (1, ({BIG}), 0), (2, ({BIG}) || 'x', 0)")
    p = Pipeline(log_dir, config(docs, tables=["public.docs"], max_batch_events=1))
    try:
        p.start()
        docs.execute("UPDATE docs SET views = 1 WHERE id = 1")
        p.run_until(lambda: len(p.events(TOPIC)) == 3, "two reads and an update")
        p.stop()  # a fresh process: nothing cached, the image must come from the log
        docs.execute("UPDATE docs SET views = 2 WHERE id = 2")
        docs.execute("UPDATE docs SET views = 3 WHERE id = 1")
        docs.execute("UPDATE docs SET views = 4, id = 5 WHERE id = 1")
        p.start()
        p.run_until(lambda: len(p.events(TOPIC)) == 7, "the updates")
        events = p.events(TOPIC)
        assert [e["op"] for e in events] == ["r", "r", "u", "u", "u", "d", "c"]
        for event in events[2:5] + events[6:]:
            assert event["after"]["body"].startswith(body(docs)), event["after"]["views"]
        assert events[3]["after"]["body"].endswith("x")
        assert events[6]["after"] == {"id": 5, "body": body(docs), "views": 4}
        assert p.state(TOPIC) == {
            2: {"id": 2, "body": body(docs) + "x", "views": 2},
            5: {"id": 5, "body": body(docs), "views": 4},
        }
    finally:
        p.close()


def test_replica_identity_full_fills_them_from_the_old_row(docs: Database, log_dir: Path) -> None:
    docs.execute("ALTER TABLE docs REPLICA IDENTITY FULL")
    p = Pipeline(log_dir, config(docs, tables=["public.docs"], snapshot="never", toast="fail"))
    try:
        p.start()
        docs.execute(f"INSERT INTO docs VALUES (1, ({BIG}), 0)")
        docs.execute("UPDATE docs SET views = 1")
        p.run_until(lambda: len(p.events(TOPIC)) == 2, "insert and update")
        update = p.events(TOPIC)[1]
        assert update["after"] == {"id": 1, "body": body(docs), "views": 1}
        assert update["before"] == {"id": 1, "body": body(docs), "views": 0}
    finally:
        p.close()


def test_toast_fail_stops_with_the_replica_identity_fix(docs: Database, log_dir: Path) -> None:
    p = Pipeline(log_dir, config(docs, tables=["public.docs"], snapshot="never", toast="fail"))
    try:
        p.start()
        docs.execute(f"INSERT INTO docs VALUES (1, ({BIG}), 0)")
        docs.execute("UPDATE docs SET views = 1")
        with pytest.raises(SchemaError, match="REPLICA IDENTITY FULL"):
            p.run_until(lambda: False, "the error")
    finally:
        p.close()


def test_a_table_without_primary_key_is_refused_with_the_fix(db: Database, log_dir: Path) -> None:
    db.execute("CREATE TABLE events (at timestamptz, what text)")
    p = Pipeline(log_dir, config(db, tables=["public.events"]))
    try:
        with pytest.raises(
            SchemaError, match=r"no primary key.*key_columns.*REPLICA IDENTITY FULL"
        ):
            p.start()
    finally:
        p.close()


def test_key_columns_from_the_config_key_a_table_without_primary_key(
    db: Database, log_dir: Path
) -> None:
    db.execute("CREATE TABLE events (tenant int, seq int, what text)")
    db.execute("ALTER TABLE events REPLICA IDENTITY FULL")
    db.execute("INSERT INTO events VALUES (1, 1, 'a')")
    cfg = config(db, tables=["public.events"], key_columns={"public.events": ["tenant", "seq"]})
    p = Pipeline(log_dir, cfg)
    try:
        p.start()
        db.execute("UPDATE events SET what = 'b'")
        db.execute("DELETE FROM events")
        p.run_until(lambda: len(p.events("shop.public.events")) == 3, "three events")
        keys = [k for k, v in p.records("shop.public.events")]
        assert keys == [b'{"tenant":1,"seq":1}'] * 4  # r, u, d and its tombstone
        assert p.state("shop.public.events") == {}
    finally:
        p.close()


def test_a_full_identity_table_without_any_key_gets_null_keys(db: Database, log_dir: Path) -> None:
    db.execute("CREATE TABLE events (at int, what text)")
    db.execute("ALTER TABLE events REPLICA IDENTITY FULL")
    db.execute("INSERT INTO events VALUES (1, 'a')")
    p = Pipeline(log_dir, config(db, tables=["public.events"], snapshot_chunk_size=1))
    try:
        p.start()
        db.execute("DELETE FROM events")
        p.run_until(lambda: len(p.events("shop.public.events")) == 2, "read and delete")
        read, delete = p.events("shop.public.events")
        assert {k for k, _ in p.records("shop.public.events")} == {None}
        assert delete["before"] == {"at": 1, "what": "a"}
        assert read["after"] == {"at": 1, "what": "a"}
    finally:
        p.close()
