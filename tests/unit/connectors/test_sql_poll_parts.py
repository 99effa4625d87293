"""sql_poll's config model, value mapping and watermark."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from connectors.source.sql_poll.config import SqlPollConfig
from connectors.source.sql_poll.values import json_ready
from connectors.source.sql_poll.watermark import Cursor, Watermark
from hub.errors import FatalError, SchemaError

BASE: dict[str, Any] = {"name": "legacy", "url": "sqlite:///x.db", "table": "orders"}


def test_design_example_config_is_valid_and_interval_is_parsed() -> None:
    config = SqlPollConfig(
        **BASE, type="sql_poll", mode="incrementing", incrementing_column="id", interval="5s"
    )
    assert config.interval == 5000
    assert config.batch_size == 1000
    assert config.lag == 0
    assert (config.schema_name, config.table_name) == (None, "orders")


def test_schema_qualified_table_is_split() -> None:
    config = SqlPollConfig(**{**BASE, "table": "sales.orders"}, mode="incrementing",
                           incrementing_column="id")
    assert (config.schema_name, config.table_name) == ("sales", "orders")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"mode": "incrementing"}, "needs incrementing_column"),
        ({"mode": "timestamp"}, "needs timestamp_column"),
        ({"mode": "timestamp+incrementing", "timestamp_column": "t"}, "needs incrementing_column"),
        ({"mode": "incrementing", "incrementing_column": "id", "timestamp_column": "t"},
         "only used in the timestamp modes"),
        ({"mode": "timestamp", "timestamp_column": "t", "incrementing_column": "id"},
         "only used with mode incrementing"),
        ({"mode": "incrementing", "incrementing_column": "id", "lag": "5s"}, "lag only applies"),
        ({"mode": "sometimes"}, "incrementing"),
        ({"mode": "incrementing", "incrementing_column": "id", "colour": "red"}, "colour"),
        ({"mode": "incrementing", "incrementing_column": "id", "query": " ; "}, "query is empty"),
        ({"mode": "incrementing", "incrementing_column": "id", "interval": "soon"},
         "not a duration"),
    ],
)
def test_invalid_configs_say_what_is_wrong(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SqlPollConfig(**BASE, **keys)


def test_bad_url_is_rejected_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as info:
        SqlPollConfig(**{**BASE, "url": "not a url hunter2"}, mode="incrementing",
                      incrementing_column="id")
    errors = info.value.errors()
    assert "not a SQLAlchemy database URL" in errors[0]["msg"]
    assert "hunter2" not in errors[0]["msg"]


def test_trailing_semicolon_of_a_custom_query_is_dropped() -> None:
    config = SqlPollConfig(**BASE, mode="incrementing", incrementing_column="id",
                           query="SELECT * FROM orders WHERE a = 1 ;\n")
    assert config.query == "SELECT * FROM orders WHERE a = 1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (7, 7),
        ("x", "x"),
        (1.5, 1.5),
        (float("nan"), None),
        (Decimal("12.30"), "12.30"),
        (datetime(2026, 1, 31, 2, 0, 0, 500), "2026-01-31T02:00:00.000500"),
        (
            datetime(2026, 1, 31, 2, tzinfo=timezone(timedelta(hours=1))),
            "2026-01-31T02:00:00+01:00",
        ),
        (date(2026, 1, 31), "2026-01-31"),
        (time(2, 30), "02:30:00"),
        (timedelta(seconds=1, microseconds=5), 1_000_005),
        (b"\x00\xff", base64.b64encode(b"\x00\xff").decode()),
        (memoryview(b"ab"), "YWI="),
        (UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ({"a": [Decimal("1"), None]}, {"a": ["1", None]}),
    ],
)
def test_column_values_become_json_ready(value: Any, expected: Any) -> None:
    assert json_ready(value) == expected


def test_watermark_round_trips_through_its_checkpoint() -> None:
    watermark = Watermark(42, datetime(2026, 1, 31, 2, 0, 0, 123456, tzinfo=UTC))
    assert watermark.checkpoint() == {"id": 42, "ts": "2026-01-31T02:00:00.123456+00:00"}
    assert Watermark.from_checkpoint(watermark.checkpoint(), "s") == watermark
    assert Watermark.from_checkpoint(None, "s") == Watermark()
    assert Watermark.from_checkpoint({"id": 3}, "s") == Watermark(3, None)


@pytest.mark.parametrize("checkpoint", [{"id": "3"}, {"id": True}, {"ts": "yesterday"}, {"ts": 5}])
def test_a_foreign_checkpoint_is_a_fatal_error(checkpoint: dict[str, Any]) -> None:
    with pytest.raises(FatalError, match="reset the source's checkpoint"):
        Watermark.from_checkpoint(checkpoint, "legacy")


def test_cursor_values_of_the_wrong_type_are_schema_errors() -> None:
    cursor = Cursor("table 'orders'", "id", "ts")
    assert cursor.after({"id": 5, "ts": datetime(2026, 1, 1)}) == Watermark(5, datetime(2026, 1, 1))
    with pytest.raises(SchemaError, match="'id' of table 'orders' holds 'abc'"):
        cursor.after({"id": "abc", "ts": datetime(2026, 1, 1)})
    with pytest.raises(SchemaError, match="TIMESTAMP/DATETIME"):
        cursor.after({"id": 1, "ts": "2026-01-01"})


def test_the_first_poll_is_due_the_moment_the_ticker_starts() -> None:
    # `run --until-caught-up` takes a source whose poll found nothing for idle: the first
    # poll must not wait on the scheduler's thread to mark it due
    from connectors.source.sql_poll.schedule import Ticker

    ticker = Ticker(60_000, "first_tick")
    ticker.start()
    try:
        assert ticker.wait(0) is True
        assert ticker.wait(0) is False  # the next one comes an interval later
    finally:
        ticker.stop()
