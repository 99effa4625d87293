"""Incremental re-snapshot of a table while streaming (DBLog watermarks in a signal table):
under concurrent writes no read is older than a change already in the log, the table
rebuilt from the log equals the table, and a re-snapshot interrupted by a crash resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.source.mysql.incremental_snapshot import request_snapshot
from hub.errors import UsageError
from tests.integration.mysql.pipeline import Database, Pipeline, config
from tests.integration.mysql.test_snapshot import ROWS, fill, table_state, writer

pytestmark = pytest.mark.integration


def incremental_reads(p: Pipeline, topic: str) -> list[dict[str, Any]]:
    return [
        e for e in p.events(topic) if e["op"] == "r" and e["source"]["snapshot"] == "incremental"
    ]


def snapshot_done(p: Pipeline, name: str) -> bool:
    cp = p.log.last_checkpoint(name)
    return cp is not None and "incremental" not in cp


def assert_reads_never_stale(p: Pipeline, topic: str) -> None:
    """v only grows per key (updates add one; ids are never reused): an incremental read
    must not bring back a deleted row or an older v than a change before it in the log."""
    last: dict[int, int | None] = {}  # id -> v, None once deleted
    for event in p.events(topic):
        if event["op"] == "d":
            last[event["before"]["id"]] = None
            continue
        row = event["after"]
        if event["source"]["snapshot"] == "incremental":
            assert row["id"] not in last or last[row["id"]] is not None, (
                f"an incremental read of a row deleted before it: {event}"
            )
            assert row["v"] >= (last.get(row["id"]) or 0), f"a stale incremental read: {event}"
        last[row["id"]] = row["v"]


def catch_up(p: Pipeline, db: Database, topic: str) -> None:
    """Write a marker row and stream until it is in the log."""
    db.execute("INSERT INTO items VALUES (%s, -1)", (10_000_000,))
    p.run_until(lambda: 10_000_000 in p.state(topic), "the marker row in the log", 60)


def test_resnapshot_under_concurrent_writes(db: Database, log_dir: Path) -> None:
    fill(db)
    cfg = config(db, snapshot_chunk_size=500)
    p = Pipeline(log_dir, cfg)
    topic = p.topic(db, "items")
    try:
        p.start()
        p.run_until(lambda: len(p.state(topic)) >= ROWS, "the initial snapshot")
        with writer(db, seed=7):
            assert request_snapshot(cfg, [f"{db.name}.items"]) == f"{db.name}.items"
            p.run_until(lambda: len(incremental_reads(p, topic)) > 0, "the first chunk", 60)
            p.run_until(lambda: snapshot_done(p, cfg.name), "the re-snapshot to finish", 120)
        catch_up(p, db, topic)
        reads = incremental_reads(p, topic)
        # Every row that existed throughout was read again, unless a change replaced it.
        assert len(reads) > ROWS // 2
        assert_reads_never_stale(p, topic)
        assert p.state(topic) == table_state(db)
        # The watermarks were cleaned up; the request row stays, like Debezium's.
        kinds = db.rows("SELECT type FROM changehub_signal")
        assert [k for (k,) in kinds] == ["execute-snapshot"]
        # The signal table is never captured.
        assert all("changehub_signal" not in t for t in p.log.list_topics())
    finally:
        p.close()


def test_resnapshot_resumes_after_a_crash(db: Database, log_dir: Path) -> None:
    fill(db)
    cfg = config(db, snapshot="never", snapshot_chunk_size=100, max_batch_events=100)
    p = Pipeline(log_dir, cfg)
    topic = p.topic(db, "items")
    try:
        p.start()
        p.step()
        request_snapshot(cfg)  # every captured table
        # Crash once a few chunks are in the log, the table still pending.
        p.run_until(
            lambda: len(incremental_reads(p, topic)) >= 300, "a few chunks in the log", 60
        )
        cp = p.log.last_checkpoint(cfg.name)
        assert cp is not None and cp["incremental"]["pending"] == [f"{db.name}.items"]
        assert cp["incremental"]["after"] is not None
        p.stop()  # what was not durable is lost, as in a kill -9
        db.execute("UPDATE items SET v = v + 1 WHERE id > %s", (ROWS - 100,))
        p.start()
        p.run_until(lambda: snapshot_done(p, cfg.name), "the resumed re-snapshot", 60)
        catch_up(p, db, topic)
        read_ids = [e["after"]["id"] for e in incremental_reads(p, topic)]
        # Resumed after its last chunk in the log: every row read, none read twice.
        assert sorted(read_ids) == list(range(1, ROWS + 1))
        assert_reads_never_stale(p, topic)
        assert p.state(topic) == table_state(db)
    finally:
        p.close()


def test_a_table_it_does_not_capture_is_refused(db: Database) -> None:
    cfg = config(db)
    with pytest.raises(UsageError, match=r"does not capture other\.items"):
        request_snapshot(cfg, ["other.items"])
    with pytest.raises(UsageError, match="does not capture"):
        request_snapshot(cfg, [f"{db.name}.changehub_signal"])
