"""The search sink's columnar path writes byte for byte the bulk bodies of its per-record
path for the same events, and leaves to the per-record path every batch it cannot."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.api import ConnectorContext
from connectors.envelope import encode_key, event_records
from connectors.sink.search.columnar import LineBuilder
from connectors.sink.search.config import SearchSinkConfig
from connectors.sink.search.indexes import Indexes
from connectors.sink.search.sink import SearchSink
from log.api import LogRecord
from log.embedded import EmbeddedLog

SOURCE = {"connector": "postgres", "name": "shop", "db": "shop", "schema": "public",
          "ts_ms": 1, "snapshot": "false", "lsn": 123}


def row(i: int) -> dict[str, Any]:
    """A row with a value of every type the sources write (as their JSON mapping gives it:
    numeric, timestamps, dates and uuids as strings, jsonb as JSON, arrays as lists)."""
    return {
        "id": i, "small": i % 100, "big": 9_000_000_000_000_000_000 - i, "neg": -i,
        "zero": 0, "text": f"note {i} «ünïcode» 😀 \"quoted\" \\ | / \t\n\r\b\f \x01 \x1f \x7f"
                          "\u2028",
        "empty": "", "varchar": "paid" if i % 2 else "open", "paid": i % 3 == 0,
        "total": f"{i}.25", "huge_numeric": "123456789012345678901234567890.000001",
        "placed": "2024-02-29T23:59:59.123456Z", "local_ts": "2024-02-29T23:59:59.123456",
        "day": "2024-01-31", "time": "12:34:56", "ref": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "bytes": "3q2+7w==", "tags": ["a", f"t{i}", None], "ints": [1, -2, 3],
        "meta": {"k": [1, 2, None], "s": "two", "nested": {"deep": [{"x": True}]}, "e": {}},
        "nothing": None, "interval": "P1DT2H",
    }


def floats(i: int) -> dict[str, Any]:
    """Numbers DuckDB spells otherwise than orjson (see columnar's module doc)."""
    return {"id": i, "score": i / 3, "tiny": 5e-324, "large": 1e20, "neg_zero": -0.0,
            "round": 2.0, "u64": 18_446_744_073_709_551_615, "in_json": {"f": [0.1, 1.5e-8]},
            "ctl": "\x1f\x1b"}


def records(rows: list[dict[str, Any]], *, topic: str = "shop.public.orders",
            key: tuple[str, ...] = ("id",), op: str = "c", first_offset: int = 10,
            ) -> list[LogRecord]:
    out = []
    for n, r in enumerate(rows):
        _, schema, table = topic.split(".")
        src = {**SOURCE, "schema": schema, "table": table}
        (rec,) = event_records(topic=topic, key=encode_key(r, key), op=op,  # type: ignore[arg-type]
                               before=None, after=r, source=src, ts_ms=1)
        out.append(LogRecord(topic, 0, first_offset + n, 1, rec.key, rec.value))
    return out


@pytest.fixture
def sink(tmp_path: Path) -> SearchSink:
    """A sink not started: its per-record path (``_add``) and index names are all the test
    uses, so no engine is needed."""
    config = SearchSinkConfig.model_validate(
        {"name": "s", "type": "opensearch", "topics": ["shop.*"], "hosts": ["http://x:9200"],
         "index": "{schema}-{table}"})
    log = EmbeddedLog(tmp_path / "log")
    context = ConnectorContext("s", log, tmp_path, logging.getLogger("test"))
    s = SearchSink(config, context)
    s._indexes = Indexes(None, config, context.logger)  # type: ignore[arg-type]
    return s


def per_record_body(sink: SearchSink, batch: list[LogRecord]) -> bytes:
    for record in batch:
        sink._add(record)
    actions = [a for a, _ in sink._pending.values()]
    sink._pending.clear()
    return b"".join(a.encode("external") for a in actions)


def columnar_body(sink: SearchSink, batch: list[LogRecord]) -> bytes | None:
    assert sink._indexes is not None
    lines = LineBuilder("external").build(batch, sink._indexes.name_for)
    return None if lines is None else lines.prepared().body


@pytest.mark.parametrize("make", [row, floats], ids=["every-type", "respelled-numbers"])
def test_the_columnar_body_is_the_per_record_body(sink: SearchSink, make: Any) -> None:
    batch = records([make(i) for i in range(100)])
    body = columnar_body(sink, batch)
    assert body is not None
    assert body == per_record_body(sink, batch)


def test_envelopes_another_writer_spelled_give_the_per_record_body(sink: SearchSink) -> None:
    # As Jackson (Debezium) or a hand might spell them: exponents, trailing zeros, integers
    # past 64 bits, upper-case and needless escapes, spaces.
    values = [
        b'{"before":null,"after":{"id":%d,"a":1.0E20,"b":1.50,"c":-9223372036854775809,'
        rb'"d":"\u001F\u00e9\/","e":[ 1 , 2.0 ],"f":-0,"g":1e2},"op":"c","source":{}}' % i
        for i in range(70)
    ]
    batch = [LogRecord("shop.public.orders", 0, i, 1, b'{"id":%d}' % i, v)
             for i, v in enumerate(values)]
    body = columnar_body(sink, batch)
    assert body is not None
    assert body == per_record_body(sink, batch)


def test_composite_and_text_keys_and_several_topics_in_one_batch(sink: SearchSink) -> None:
    batch = records([row(i) for i in range(30)], key=("id", "text"))
    batch += records([{**row(i), "id": f"k|{i}\\"} for i in range(30)],
                     topic="shop.public.customers", first_offset=100)
    batch += records([row(i) for i in range(30)], topic="shop.sales.orders", first_offset=500)
    body = columnar_body(sink, batch)
    assert body is not None
    assert body == per_record_body(sink, batch)
    assert b'"_index":"sales-orders"' in body and b'"_index":"public-customers"' in body


def test_retried_items_are_the_per_record_operations(sink: SearchSink) -> None:
    batch = records([row(i) for i in range(5)])
    assert sink._indexes is not None
    lines = LineBuilder("external").build(batch, sink._indexes.name_for)
    assert lines is not None
    bulk = lines.slice(1, 4).prepared()
    items = bulk.items()
    assert [a.doc_id for a, _ in items] == ["1", "2", "3"]
    assert [a.version for a, _ in items] == [12, 13, 14]
    assert b"".join(e for _, e in items) == bulk.body
    assert [bulk.records[id(a)] for a, _ in items] == batch[1:4]


def raw(value: bytes | None, key: bytes | None = b'{"id":1}') -> LogRecord:
    return LogRecord("shop.public.orders", 0, 1, 1, key, value)


@pytest.mark.parametrize("odd", [
    raw(None),  # tombstone
    raw(orjson.dumps({"before": {"id": 1}, "after": None, "op": "d", "source": SOURCE})),
    raw(orjson.dumps({"op": "t", "source": SOURCE})),
    raw(orjson.dumps({"after": [1], "op": "c"})),
    raw(orjson.dumps({"schema": {"type": "struct"}, "payload": {"after": {"id": 1},
                                                                "op": "c"}})),
    raw(b'{"after":{"id":1,},"op":"c"}'),  # orjson refuses trailing commas
    raw(b'{"after":{"id":NaN},"op":"c"}'),
    raw(b"not json"),
    raw(b'{"after":{"id":1},"op":"c"}', key=b"[1]"),
    raw(b'{"after":{"id":1},"op":"c"}', key=b"{}"),
    raw(b'{"after":{"id":1},"op":"c"}', key=b"\xff"),
    raw(b'{"after":{"id":1},"op":"c"}', key=None),
], ids=lambda r: repr(r.value)[:40] + repr(r.key)[:12])
def test_a_batch_with_one_event_it_cannot_take_is_left_whole(
    sink: SearchSink, odd: LogRecord
) -> None:
    batch = records([row(i) for i in range(2, 80)])
    assert columnar_body(sink, batch) is not None
    assert columnar_body(sink, [*batch, odd]) is None


def test_two_events_of_one_document_are_left_to_the_per_record_path(sink: SearchSink) -> None:
    batch = records([row(i) for i in range(10)] + [row(3)])
    assert columnar_body(sink, batch) is None
