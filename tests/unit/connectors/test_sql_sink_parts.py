"""The sql sink's table naming, event decoding, per-key collapsing and value fitting."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from connectors.envelope import encode_key, event_records
from connectors.sink.sql.changes import BadRecordError, Change, TableBatch, decode
from connectors.sink.sql.config import SqlSinkConfig
from connectors.sink.sql.evolution import TableShape, UnfitValueError, kind_of_type
from connectors.sink.sql.naming import render
from log.api import LogRecord

SOURCE = {"name": "shop", "db": "shop", "schema": "public", "table": "orders"}


@pytest.mark.parametrize(
    ("template", "topic", "source", "expected"),
    [
        ("{topic}", "shop.public.orders", SOURCE, (None, "shop_public_orders")),
        ("{schema}_{table}", "shop.public.orders", SOURCE, (None, "public_orders")),
        ("{schema}_{table}", "legacy.orders", {"schema": None}, (None, "orders")),
        ("{table}", "shop.public.orders", None, (None, "orders")),
        ("{source}__{table}", "legacy.orders", None, (None, "legacy__orders")),
        ("analytics.{table}", "shop.public.order-lines", None, ("analytics", "order_lines")),
        ("{db}_{table}", "x.y", {"db": "/data/app.db", "table": "t t"}, (None, "data_app_db_t_t")),
    ],
)
def test_table_template_renders_sanitised_names(
    template: str, topic: str, source: dict[str, Any] | None, expected: tuple[str | None, str]
) -> None:
    assert render(template, topic, source) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{tabel}", r"uses \{tabel\}; the placeholders are"),
        ("{table!r}", "uses"),
        ("a.b.{table}", "more than one dot"),
        ("{schema}.", "empty table part"),
        ("{table", "malformed"),
    ],
)
def test_bad_table_templates_are_config_errors(template: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SqlSinkConfig(name="w", topics=["x"], url="sqlite://", table=template)


def record(op: str, key: dict[str, Any] | None, after: dict[str, Any] | None,
           offset: int = 0) -> LogRecord:
    rec = event_records(
        topic="shop.public.orders", key=encode_key(key, list(key)) if key else None,
        op=op, before=None, after=after, source=SOURCE, ts_ms=1,  # type: ignore[arg-type]
    )[0]
    return LogRecord(rec.topic, 0, offset, rec.timestamp_ms, rec.key, rec.value)


def test_events_decode_to_row_operations() -> None:
    upsert = decode(record("u", {"id": 1}, {"id": 1, "x": 2}), "{table}")
    assert upsert == Change((None, "orders"), "upsert", {"id": 1}, {"id": 1, "x": 2}, "u", 1)
    delete = decode(record("d", {"id": 1}, None), "{table}")
    assert delete == Change((None, "orders"), "delete", {"id": 1}, {"id": 1}, "d", 1)
    assert decode(record("t", None, None), "{table}") == Change(
        (None, "orders"), "truncate", op="t", ts_ms=1
    )
    assert decode(LogRecord("shop.public.orders", 0, 0, 0, b'{"id":1}', None), "{table}") is None


def test_an_image_without_its_key_columns_gets_them_from_the_key() -> None:
    change = decode(record("c", {"id": 7}, {"x": 1}), "{table}")
    assert change is not None and change.row == {"x": 1, "id": 7}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (b'{"id":1}', b"not json", "value is not JSON"),
        (b'{"id":1}', b'{"op":"x"}', "not a change event"),
        (b'{"id":1}', b"[1,2]", "not a change event"),
        (None, b'{"op":"c","after":{"id":1}}', "key is not a JSON object"),
        (b'{"id":null}', b'{"op":"c","after":{"id":1}}', "null column"),
        (b'{"id":1}', b'{"op":"c","after":null}', "without an 'after' object"),
    ],
)
def test_records_that_are_not_change_events_are_bad_records(
    key: bytes | None, value: bytes, message: str
) -> None:
    with pytest.raises(BadRecordError, match=message):
        decode(LogRecord("shop.public.orders", 0, 0, 0, key, value), "{table}")


def _apply(*ops: tuple[str, int, str | None]) -> TableBatch:
    batch = TableBatch()
    for kind, key, name in ops:
        row = {"id": key, "name": name} if kind == "upsert" else None
        batch.add(Change((None, "t"), kind, {"id": key}, row), row)  # type: ignore[arg-type]
    return batch


def test_a_batch_keeps_only_the_last_state_per_key() -> None:
    batch = _apply(("upsert", 1, "a"), ("upsert", 1, "b"), ("upsert", 2, "x"), ("delete", 2, None))
    assert list(batch.upserts.values()) == [{"id": 1, "name": "b"}]
    assert list(batch.deletes.values()) == [{"id": 2}]


def test_an_upsert_after_a_delete_keeps_the_delete_so_the_row_is_written_afresh() -> None:
    batch = _apply(("delete", 1, None), ("upsert", 1, "new"))
    assert list(batch.deletes.values()) == [{"id": 1}]
    assert list(batch.upserts.values()) == [{"id": 1, "name": "new"}]


def test_a_truncate_drops_earlier_changes_and_keeps_later_ones() -> None:
    batch = _apply(("upsert", 1, "a"), ("delete", 2, None))
    batch.add(Change((None, "t"), "truncate"))
    batch.add(Change((None, "t"), "upsert", {"id": 3}, {"id": 3}), {"id": 3})
    assert batch.truncate
    assert list(batch.upserts.values()) == [{"id": 3}]
    assert not batch.deletes


def test_new_columns_get_types_from_their_first_non_null_value() -> None:
    shape = TableShape.of("t", ("id",), None)
    row = shape.fit({"id": 1, "n": 2.5, "ok": True, "s": "x", "doc": {"a": [1]}, "later": None,
                     "big": 2**70})
    assert row == {"id": 1, "n": 2.5, "ok": True, "s": "x", "doc": '{"a":[1]}', "big": str(2**70)}
    assert shape.columns == {"id": "integer", "n": "float", "ok": "boolean", "s": "text",
                             "doc": "text", "big": "text"}
    assert shape.fit({"id": 2, "later": 5})["later"] == 5
    assert shape.columns["later"] == "integer"


def test_values_are_converted_to_existing_column_types_or_refused() -> None:
    shape = TableShape.of("t", ("id",), None)
    shape.fit({"id": 1, "n": 1.5, "s": "x", "flag": False})
    assert shape.fit({"id": 2, "n": 3, "s": 12, "flag": True}) == {
        "id": 2, "n": 3.0, "s": "12", "flag": True
    }
    with pytest.raises(UnfitValueError, match="column 'id' holds integer values, and \"abc\""):
        shape.fit({"id": "abc"})
    with pytest.raises(UnfitValueError, match="'flag' holds boolean"):
        shape.fit({"id": 3, "flag": "yes", "brand_new": 1})
    assert "brand_new" not in shape.columns  # a row that does not fit plans nothing


def test_existing_typed_columns_take_iso_strings_and_decimal_text() -> None:
    from connectors.sqldb import TableDescription

    described = TableDescription(
        {"id": sa.Integer(), "at": sa.DateTime(), "amount": sa.Numeric(10, 2), "doc": sa.JSON()},
        ("id",),
    )
    shape = TableShape.of("t", ("id",), described)
    row = {"id": 1, "at": "2026-01-31T02:00:00", "amount": "12.30", "doc": {"a": 1}}
    assert shape.fit(row) == {
        "id": 1, "at": datetime(2026, 1, 31, 2), "amount": Decimal("12.30"), "doc": {"a": 1},
    }
    assert kind_of_type(sa.Float()) == "float"
    assert kind_of_type(sa.LargeBinary()) == "other"


def test_a_table_keyed_differently_from_the_events_is_refused() -> None:
    from connectors.sqldb import TableDescription

    described = TableDescription({"code": sa.Text(), "id": sa.Integer()}, ("code",))
    with pytest.raises(UnfitValueError, match=r"primary key \(code\) but the events' key"):
        TableShape.of("t", ("id",), described)


def test_scd2_without_history_mode_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"history.scd2 is an option of history tables"):
        SqlSinkConfig(name="w", topics=["x"], url="sqlite://", history={"scd2": True})  # type: ignore[arg-type]
    config = SqlSinkConfig(name="w", topics=["x"], url="sqlite://", mode="history",
                           history={"scd2": True})  # type: ignore[arg-type]
    assert config.history.scd2


def test_history_changes_carry_time_and_source_position() -> None:
    rec = event_records(
        topic="shop.public.orders", key=encode_key({"id": 1}, ["id"]), op="u",
        before=None, after={"id": 1}, source={**SOURCE, "lsn": 4711, "ts_ms": 5}, ts_ms=9,
    )[0]
    change = decode(LogRecord(rec.topic, 0, 0, 1, rec.key, rec.value), "{table}")
    assert change is not None and (change.ts_ms, change.position) == (5, "4711")
    binlog = {**SOURCE, "file": "mysql-bin.000003", "pos": 1234, "ts_ms": 0}
    rec = event_records(
        topic="shop.public.orders", key=encode_key({"id": 1}, ["id"]), op="c",
        before=None, after={"id": 1}, source=binlog, ts_ms=9,
    )[0]
    change = decode(LogRecord(rec.topic, 0, 0, 1, rec.key, rec.value), "{table}")
    # A snapshot's ts_ms 0 in the source block: the event's ts_ms is the time.
    assert change is not None and (change.ts_ms, change.position) == (9, "mysql-bin.000003:1234")
