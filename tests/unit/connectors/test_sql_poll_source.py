"""The sql_poll source against real SQLite files (and a refused PostgreSQL connection)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.api import SourceBatch
from connectors.source.sql_poll import SqlPollConfig, SqlPollSource
from connectors.testing import make_context
from hub.errors import RetriableError, SchemaError

DEADLINE_S = 10.0


class Db:
    """A SQLite file the tests write to as an application would (plain sqlite3)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def run(self, sql: str, *rows: tuple[Any, ...]) -> None:
        conn = sqlite3.connect(self.path)
        try:
            if rows:
                conn.executemany(sql, rows)
            else:
                conn.execute(sql)
            conn.commit()
        finally:
            conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Db:
    db = Db(tmp_path / "legacy.db")
    db.run(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount NUMERIC,"
        " photo BLOB, updated_at TIMESTAMP)"
    )
    return db


@pytest.fixture
def sources(tmp_path: Path) -> Iterator[list[SqlPollSource]]:
    made: list[SqlPollSource] = []
    yield made
    for source in made:
        source.stop()


def make(sources: list[SqlPollSource], tmp_path: Path, db: Db, **keys: Any) -> SqlPollSource:
    settings: dict[str, Any] = {
        "name": "legacy", "url": db.url, "table": "orders", "mode": "incrementing",
        "incrementing_column": "id", "interval": 20, **keys,
    }
    source = SqlPollSource(SqlPollConfig(**settings), make_context("legacy", tmp_path / "data"))
    sources.append(source)
    return source


def poll_events(
    source: SqlPollSource, count: int
) -> tuple[list[dict[str, Any]], list[SourceBatch]]:
    """Poll until ``count`` events came; return them (decoded, with key) and the batches."""
    events: list[dict[str, Any]] = []
    batches: list[SourceBatch] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(events) < count:
        assert time.monotonic() < deadline, f"only {len(events)} of {count} events arrived"
        batch = source.poll(0.5)
        if batch is None:
            continue
        batches.append(batch)
        for record in batch.records:
            event = orjson.loads(record.value) if record.value is not None else None
            if event is not None:
                event["key"] = orjson.loads(record.key) if record.key else None
                event["topic"] = record.topic
                events.append(event)
    return events, batches


def assert_quiet(source: SqlPollSource, for_s: float = 0.3) -> None:
    assert source.poll(for_s) is None


def insert(db: Db, *rows: tuple[Any, ...]) -> None:
    db.run("INSERT INTO orders (id, customer, amount, photo, updated_at) VALUES (?, ?, ?, ?, ?)",
           *rows)


def test_incrementing_mode_emits_create_events_with_the_primary_key(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    insert(db, (1, "ann", "12.50", b"\x01\x02", "2026-01-31 02:00:00"),
           (2, "bob", 3, None, None))
    source = make(sources, tmp_path, db)
    source.start(None)
    events, batches = poll_events(source, 2)
    first = events[0]
    assert first["topic"] == "legacy.orders" == source.topics()[0]
    assert first["key"] == {"id": 1}
    assert first["op"] == "c"
    assert first["before"] is None
    amount = first["after"].pop("amount")
    assert Decimal(amount) == Decimal("12.5")  # SQLite's NUMERIC: text of a Decimal
    assert first["after"] == {
        "id": 1, "customer": "ann", "photo": "AQI=", "updated_at": "2026-01-31T02:00:00",
    }
    assert first["source"]["connector"] == "sql_poll"
    assert first["source"]["name"] == "legacy"
    assert first["source"]["table"] == "orders"
    assert first["source"]["schema"] is None
    assert first["source"]["snapshot"] == "false"
    assert first["source"]["watermark"] == {"id": 1}
    assert batches[-1].checkpoint == {"id": 2}


def test_timestamp_modes_emit_read_events_and_see_updates(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    insert(db, (1, "ann", 1, None, "2026-01-31 02:00:00"),
           (2, "bob", 2, None, "2026-01-31 02:00:01"))
    source = make(sources, tmp_path, db, mode="timestamp", incrementing_column=None,
                  timestamp_column="updated_at")
    source.start(None)
    events, _ = poll_events(source, 2)
    assert [e["op"] for e in events] == ["r", "r"]
    assert events[0]["source"]["ts_ms"] == 1_769_824_800_000  # the row's time, as UTC
    db.run("UPDATE orders SET customer = 'ann2', updated_at = '2026-01-31 02:00:05' WHERE id = 1")
    events, batches = poll_events(source, 1)
    assert events[0]["after"]["customer"] == "ann2"
    assert batches[-1].checkpoint == {"ts": "2026-01-31T02:00:05"}


def test_rows_are_paged_and_each_page_checkpoints_its_last_row(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    insert(db, *((i, f"c{i}", i, None, None) for i in range(1, 8)))
    source = make(sources, tmp_path, db, batch_size=3)
    source.start(None)
    _, batches = poll_events(source, 7)
    assert [len(b.records) for b in batches] == [3, 3, 1]
    assert [b.checkpoint for b in batches] == [{"id": 3}, {"id": 6}, {"id": 7}]


def test_resuming_from_a_checkpoint_reads_only_later_rows(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    insert(db, *((i, f"c{i}", i, None, None) for i in range(1, 6)))
    source = make(sources, tmp_path, db)
    source.start({"id": 3})
    events, _ = poll_events(source, 2)
    assert [e["key"] for e in events] == [{"id": 4}, {"id": 5}]
    assert_quiet(source)


def test_new_rows_wait_for_the_next_interval(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    insert(db, (1, "a", 1, None, None))
    source = make(sources, tmp_path, db, interval="1h")
    source.start(None)
    poll_events(source, 1)
    insert(db, (2, "b", 1, None, None))
    assert_quiet(source, 0.5)


def test_rows_with_a_null_cursor_are_not_read(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    insert(db, (1, "a", 1, None, None), (2, "b", 1, None, "2026-01-31 02:00:00"))
    source = make(sources, tmp_path, db, mode="timestamp+incrementing",
                  timestamp_column="updated_at")
    source.start(None)
    events, _ = poll_events(source, 1)
    assert events[0]["key"] == {"id": 2}
    assert_quiet(source)


def test_timestamp_mode_never_splits_rows_of_equal_time_across_pages(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    same = "2026-01-31 02:00:00"  # CURRENT_TIMESTAMP's format: no fraction
    insert(db, (1, "a", 1, None, "2026-01-31 01:59:59"),
           *((i, "x", 1, None, same) for i in range(2, 7)),
           (7, "z", 1, None, "2026-01-31 02:00:01"))
    source = make(sources, tmp_path, db, mode="timestamp", incrementing_column=None,
                  timestamp_column="updated_at", batch_size=2)
    source.start(None)
    events, batches = poll_events(source, 7)
    assert sorted(e["key"]["id"] for e in events) == list(range(1, 8))
    assert len(batches[0].records) == 6  # row 1, then the whole run of five equal times
    assert_quiet(source)


def test_timestamp_and_incrementing_mode_pages_through_equal_times_by_id(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    insert(db, *((i, "x", 1, None, "2026-01-31 02:00:00") for i in range(1, 6)),
           (6, "y", 1, None, "2026-01-31 02:00:00.000001"))
    source = make(sources, tmp_path, db, mode="timestamp+incrementing",
                  timestamp_column="updated_at", batch_size=2)
    source.start(None)
    events, batches = poll_events(source, 6)
    assert [e["key"]["id"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [len(b.records) for b in batches] == [2, 2, 2]
    assert batches[0].checkpoint == {"id": 2, "ts": "2026-01-31T02:00:00"}
    assert_quiet(source)


def test_rows_younger_than_the_lag_are_held_back(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    db.run("INSERT INTO orders (id, updated_at) VALUES (1, datetime('now', '-2 hours'))")
    db.run("INSERT INTO orders (id, updated_at) VALUES (2, CURRENT_TIMESTAMP)")
    source = make(sources, tmp_path, db, mode="timestamp+incrementing",
                  timestamp_column="updated_at", lag="1h")
    source.start(None)
    events, _ = poll_events(source, 1)
    assert events[0]["key"] == {"id": 1}
    assert_quiet(source)


def test_custom_query_is_polled_as_a_subquery(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    insert(db, (1, "ann", 5, None, None), (2, "bob", 50, None, None), (3, "cy", 70, None, None))
    source = make(sources, tmp_path, db, batch_size=1,
                  query="SELECT id, upper(customer) AS who FROM orders WHERE amount > 10;")
    source.start(None)
    events, _ = poll_events(source, 2)
    assert [e["after"] for e in events] == [{"id": 2, "who": "BOB"}, {"id": 3, "who": "CY"}]
    assert [e["key"] for e in events] == [{"id": 2}, {"id": 3}]
    assert_quiet(source)


def test_key_defaults_to_the_incrementing_column_without_a_primary_key(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    db.run("CREATE TABLE log_lines (seq INTEGER, body TEXT)")
    db.run("INSERT INTO log_lines VALUES (10, 'x')")
    source = make(sources, tmp_path, db, table="log_lines", incrementing_column="seq")
    source.start(None)
    events, _ = poll_events(source, 1)
    assert events[0]["key"] == {"seq": 10}


def test_key_columns_override_the_primary_key(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    insert(db, (1, "ann", 5, None, None))
    source = make(sources, tmp_path, db, key_columns=["customer", "id"], topic="custom.topic")
    source.start(None)
    events, _ = poll_events(source, 1)
    assert events[0]["key"] == {"customer": "ann", "id": 1}
    assert events[0]["topic"] == "custom.topic"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"table": "missing"}, "table 'missing' does not exist in sqlite:///.*: create it"),
        ({"incrementing_column": "nope"}, r"column 'nope' \(incrementing_column\) is not in table"),
        ({"incrementing_column": "customer"},
         "column 'customer' .* has type TEXT, but mode 'incrementing' needs an integer column"),
        ({"mode": "timestamp", "incrementing_column": None, "timestamp_column": "amount"},
         "needs a TIMESTAMP/DATETIME column"),
        ({"key_columns": ["id", "colour"]}, "key column.*'colour' not in table 'orders'"),
        ({"query": "SELECT customer FROM orders"},
         r"column 'id' \(incrementing_column\) is not in the query"),
    ],
)
def test_schema_that_does_not_fit_fails_at_start_naming_the_fix(
    db: Db, sources: list[SqlPollSource], tmp_path: Path, keys: dict[str, Any], message: str
) -> None:
    source = make(sources, tmp_path, db, **keys)
    with pytest.raises(SchemaError, match=message):
        source.start(None)


def test_timestamp_mode_without_any_key_asks_for_key_columns(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    db.run("CREATE TABLE events (at TIMESTAMP, body TEXT)")
    source = make(sources, tmp_path, db, table="events", mode="timestamp",
                  incrementing_column=None, timestamp_column="at")
    with pytest.raises(SchemaError, match="set key_columns"):
        source.start(None)


def test_a_cursor_column_dropped_while_running_is_a_schema_error(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    insert(db, (1, "a", 1, None, "2026-01-31 02:00:00"))
    source = make(sources, tmp_path, db, mode="timestamp+incrementing",
                  timestamp_column="updated_at")
    source.start(None)
    poll_events(source, 1)
    db.run("ALTER TABLE orders DROP COLUMN updated_at")
    with pytest.raises(SchemaError, match=r"'updated_at' .* dropped or renamed"):
        poll_events(source, 1)


def test_a_table_dropped_while_running_is_a_schema_error(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    insert(db, (1, "a", 1, None, None))
    source = make(sources, tmp_path, db)
    source.start(None)
    poll_events(source, 1)
    db.run("DROP TABLE orders")
    with pytest.raises(SchemaError, match="table 'orders' does not exist"):
        poll_events(source, 1)


def test_text_in_an_untyped_incrementing_column_is_a_schema_error(
    db: Db, sources: list[SqlPollSource], tmp_path: Path
) -> None:
    db.run("CREATE TABLE loose (id, body)")
    db.run("INSERT INTO loose VALUES ('abc', 'x')")
    source = make(sources, tmp_path, db, table="loose")
    source.start(None)
    with pytest.raises(SchemaError, match="holds 'abc'"):
        poll_events(source, 1)


def test_a_refused_connection_is_retriable_and_the_password_stays_hidden(
    sources: list[SqlPollSource], tmp_path: Path
) -> None:
    db = Db(tmp_path / "unused.db")
    db.url = "postgresql://app:hunter2@127.0.0.1:1/shop"
    source = make(sources, tmp_path, db)
    with pytest.raises(RetriableError) as info:
        source.start(None)
    assert "hunter2" not in str(info.value)
    assert "postgresql://app:***@127.0.0.1:1/shop" in str(info.value)
