"""The search sink against real OpenSearch 2.19 and Elasticsearch 7.17 nodes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.sink.search import SearchSink, SearchSinkConfig
from connectors.testing import DeadLetters, make_context
from hub.errors import RecordError
from log.api import Record, TopicConfig
from log.factory import open_log
from tests.integration.search.conftest import Target
from tests.integration.search.events import Stream

pytestmark = pytest.mark.integration


@contextmanager
def running(
    target: Target, tmp_path: Path, dead: DeadLetters | None = None, **options: Any
) -> Iterator[SearchSink]:
    config = SearchSinkConfig(**{
        "name": "search", "type": target.kind, "topics": ["shop.*"], "hosts": [target.url],
        "index": target.prefix + "-{table}", "retry_timeout_s": 5, **options,
    })
    context = make_context("search", tmp_path / "data", dead or DeadLetters(False))
    with open_log("embedded", tmp_path / "log") as log:
        context.log = log
        sink = SearchSink(config, context)
        sink.start({})
        try:
            yield sink
        finally:
            sink.stop()


def test_inserts_updates_and_deletes_end_as_the_table(engine: Target, tmp_path: Path) -> None:
    s = Stream()
    records = [
        *s.change("c", {"id": 1, "total": 10}),
        *s.change("c", {"id": 2, "total": 20}),
        *s.change("u", {"id": 1, "total": 11}),
        *s.change("d", key={"id": 2}),
        *s.change("c", {"id": 3, "total": 30}),
    ]
    with running(engine, tmp_path) as sink:
        sink.write(records)
        assert sink.flush() == {records[0].tp: len(records)}
    assert engine.documents(f"{engine.prefix}-orders") == {
        "1": {"id": 1, "total": 11}, "3": {"id": 3, "total": 30},
    }


def test_an_older_write_never_overwrites_a_newer_one_and_counts_as_a_conflict(
    engine: Target, tmp_path: Path
) -> None:
    s = Stream()
    old = s.change("c", {"id": 1, "total": 1})
    new = s.change("u", {"id": 1, "total": 2})
    with running(engine, tmp_path) as sink:
        sink.write(new)
        sink.flush()
    with running(engine, tmp_path) as sink:  # a new run: nothing remembered in memory
        sink.write(old)
        sink.flush()
        assert sink.metrics()["version_conflicts"] == 1
    index = f"{engine.prefix}-orders"
    assert engine.documents(index) == {"1": {"id": 1, "total": 2}}
    assert engine.versions(index) == {"1": new[0].offset + 1}


def test_a_replayed_upsert_does_not_resurrect_a_deleted_document(
    engine: Target, tmp_path: Path
) -> None:
    s = Stream()
    insert = s.change("c", {"id": 7, "total": 1})
    delete = s.change("d", key={"id": 7})
    with running(engine, tmp_path) as sink:
        sink.write(insert + delete)
        sink.flush()
    with running(engine, tmp_path) as sink:
        sink.write(insert)  # out of order, alone: the engine remembers the delete's version
        sink.flush()
        assert sink.metrics()["version_conflicts"] == 1
    assert engine.documents(f"{engine.prefix}-orders") == {}


def test_composite_keys_give_stable_distinct_ids(engine: Target, tmp_path: Path) -> None:
    s = Stream("shop.public.lines", key=("order_id", "line"))
    with running(engine, tmp_path) as sink:
        sink.write(s.change("c", {"order_id": "a|", "line": "b", "qty": 1}))
        sink.write(s.change("c", {"order_id": "a", "line": "|b", "qty": 2}))
        sink.write(s.change("c", {"order_id": 5, "line": 1, "qty": 3}))
        sink.flush()
    assert engine.documents(f"{engine.prefix}-lines") == {
        "a\\||b": {"order_id": "a|", "line": "b", "qty": 1},
        "a|\\|b": {"order_id": "a", "line": "|b", "qty": 2},
        "5|1": {"order_id": 5, "line": 1, "qty": 3},
    }


def test_new_indexes_get_inferred_mappings_and_gc_deletes(
    engine: Target, tmp_path: Path
) -> None:
    s = Stream()
    row = {"id": 1, "total": 9.5, "qty": 3, "paid": True, "note": "hello",
           "created": "2024-01-31T12:00:00.123456Z", "day": "2024-01-31", "price": "12.50",
           "meta": {"a": 1}, "missing": None}
    with running(engine, tmp_path) as sink:
        sink.write(s.change("c", row))
        sink.flush()
    index = f"{engine.prefix}-orders"
    props = engine.client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert props["id"]["type"] == "long"
    assert props["qty"]["type"] == "long"
    assert props["total"]["type"] == "double"
    assert props["paid"]["type"] == "boolean"
    assert props["created"]["type"] == "date"
    assert props["day"]["type"] == "date"
    assert props["note"]["type"] == "text"
    assert props["note"]["fields"]["keyword"]["type"] == "keyword"
    assert props["price"]["type"] == "double"
    settings = engine.client.indices.get_settings(index=index)[index]["settings"]["index"]
    assert settings["gc_deletes"] == "1h"
    engine.client.indices.refresh(index=index)
    hits = engine.client.search(index=index, body={"query": {"range": {
        "created": {"gte": "2024-01-31T00:00:00Z"}}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["1"]


def test_numeric_strings_are_range_queryable_numbers_and_source_keeps_every_digit(
    engine: Target, tmp_path: Path
) -> None:
    # Postgres numeric arrives as a string with every digit; the engine coerces it into the
    # inferred double field, and _source stays exactly as sent.
    s = Stream()
    exact = "12345678901234567890.123456789012345678"
    rows = [{"id": 1, "price": "12.50"}, {"id": 2, "price": exact},
            {"id": 3, "price": "-0.01"}, {"id": 4, "price": None}]
    with running(engine, tmp_path) as sink:
        sink.write([r for row in rows for r in s.change("c", row)])
        sink.flush()
        # A later value that is no number (the column was text after all) is not rejected.
        sink.write(s.change("c", {"id": 5, "price": "call us"}))
        sink.flush()
        assert sink.metrics()["documents_rejected"] == 0
    index = f"{engine.prefix}-orders"
    props = engine.client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert props["price"]["type"] == "double"
    docs = engine.documents(index)
    assert docs["2"]["price"] == exact
    assert docs["5"]["price"] == "call us"

    def ids(query: dict[str, Any]) -> list[str]:
        hits = engine.client.search(index=index, body={"query": query})["hits"]["hits"]
        return sorted(h["_id"] for h in hits)

    assert ids({"range": {"price": {"gte": 0, "lt": 100}}}) == ["1"]
    assert ids({"range": {"price": {"gt": 1e19}}}) == ["2"]
    assert ids({"range": {"price": {"lt": 0}}}) == ["3"]
    assert ids({"term": {"price.keyword": "call us"}}) == ["5"]
    total = engine.client.search(index=index, body={
        "size": 0, "aggs": {"small": {"sum": {"field": "price"}}},
        "query": {"range": {"price": {"lt": 100}}}})["aggregations"]["small"]["value"]
    assert total == pytest.approx(12.49)


def test_mappings_from_config_are_used(engine: Target, tmp_path: Path) -> None:
    s = Stream()
    mappings = {"properties": {"price": {"type": "scaled_float", "scaling_factor": 100}}}
    with running(engine, tmp_path, mappings=mappings) as sink:
        sink.write(s.change("c", {"id": 1, "price": "12.50"}))
        sink.flush()
    index = f"{engine.prefix}-orders"
    props = engine.client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert props["price"] == {"type": "scaled_float", "scaling_factor": 100.0}


def test_a_mapping_conflict_goes_to_the_dead_letter_topic_while_the_rest_flows(
    engine: Target, tmp_path: Path
) -> None:
    s = Stream()
    good = s.change("c", {"id": 1, "qty": 1})
    bad = s.change("c", {"id": 2, "qty": "not a number"})
    later = s.change("c", {"id": 3, "qty": 3})
    dead = DeadLetters(tolerate=True)
    with running(engine, tmp_path, dead) as sink:
        sink.write(good)
        sink.flush()  # the index exists now, qty mapped as long
        sink.write(bad + later)
        assert sink.flush() == {good[0].tp: later[-1].offset + 1}
        assert sink.metrics()["dead_letters"] == 1
    assert [r.offset for r, _ in dead.records] == [bad[0].offset]
    assert "mapper_parsing_exception" in dead.records[0][1]
    assert set(engine.documents(f"{engine.prefix}-orders")) == {"1", "3"}


def test_a_rejected_document_fails_the_sink_when_nothing_is_tolerated(
    engine: Target, tmp_path: Path
) -> None:
    s = Stream()
    with running(engine, tmp_path) as sink:
        sink.write(s.change("c", {"id": 1, "qty": 1}))
        sink.flush()
        sink.write(s.change("c", {"id": 2, "qty": "x"}))
        with pytest.raises(RecordError, match="mapper_parsing_exception"):
            sink.flush()


def test_a_record_that_is_not_a_change_event_is_a_dead_letter(
    engine: Target, tmp_path: Path
) -> None:
    s = Stream()
    dead = DeadLetters(tolerate=True)
    with running(engine, tmp_path, dead) as sink:
        sink.write([s.raw(b'{"id": 1}', b"not json"), s.raw(b'{"id": 2}', b'{"x": 1}')])
        sink.write(s.change("c", {"id": 3}))
        sink.flush()
    assert [r.offset for r, _ in dead.records] == [0, 1]
    assert set(engine.documents(f"{engine.prefix}-orders")) == {"3"}


@pytest.mark.parametrize("mode", ["recreate", "delete_by_query"])
def test_truncate_empties_the_index_and_later_rows_stay(
    engine: Target, tmp_path: Path, mode: str
) -> None:
    s = Stream()
    before = s.change("c", {"id": 1}) + s.change("c", {"id": 2})
    truncate = s.change("t")
    after = s.change("c", {"id": 3})
    options: dict[str, Any] = {"truncate": mode}
    if mode == "delete_by_query":
        options["version_field"] = "changehub_version"
    with running(engine, tmp_path, **options) as sink:
        sink.write(before)
        sink.flush()
        sink.write(truncate + after)
        sink.flush()
        assert sink.metrics()["truncates"] == 1
    with running(engine, tmp_path, **options) as sink:  # a replay of all of it after a crash
        sink.write(before + truncate + after)
        sink.flush()
    assert set(engine.documents(f"{engine.prefix}-orders")) == {"3"}


def test_alias_points_at_a_versioned_index(engine: Target, tmp_path: Path) -> None:
    s = Stream()
    with running(engine, tmp_path, alias=True) as sink:
        sink.write(s.change("c", {"id": 1}))
        sink.flush()
        sink.write(s.change("t") + s.change("c", {"id": 2}))
        sink.flush()
    alias = f"{engine.prefix}-orders"
    assert sorted(engine.client.indices.get_alias(name=alias)) == [f"{alias}-v1"]
    assert set(engine.documents(alias)) == {"2"}


def test_transforms_shape_documents_and_filtered_rows_are_removed(
    engine: Target, tmp_path: Path
) -> None:
    s = Stream()
    transforms = {"filter": "status != 'draft' and total >= 10", "exclude": ["internal"],
                  "mask": ["email"], "rename": {"total": "amount"}}
    with running(engine, tmp_path, transforms=transforms) as sink:
        sink.write(s.change("c", {"id": 1, "status": "paid", "total": "12.50",
                                  "internal": 1, "email": "a@b.c"}))
        sink.write(s.change("c", {"id": 2, "status": "draft", "total": 99, "internal": 1,
                                  "email": None}))
        sink.write(s.change("c", {"id": 3, "status": "paid", "total": 50, "internal": 1,
                                  "email": None}))
        sink.flush()
        sink.write(s.change("u", {"id": 3, "status": "draft", "total": 50, "internal": 1,
                                  "email": None}))
        sink.flush()
    assert engine.documents(f"{engine.prefix}-orders") == {
        "1": {"id": 1, "status": "paid", "amount": "12.50", "email": "***"},
    }


def test_engine_is_detected_when_asked(engine: Target, tmp_path: Path) -> None:
    s = Stream()
    # The type names the other engine: only detection makes this work.
    other = "elasticsearch" if engine.kind == "opensearch" else "opensearch"
    with running(engine, tmp_path, type=other, engine="auto") as sink:
        sink.write(s.change("c", {"id": 1}))
        sink.flush()
        assert sink.engine_kind == engine.kind
    assert set(engine.documents(f"{engine.prefix}-orders")) == {"1"}


def test_many_documents_in_parallel_bulks_by_count_and_bytes(
    engine: Target, tmp_path: Path
) -> None:
    s = Stream()
    records = []
    for i in range(3000):
        records += s.change("c", {"id": i, "text": "x" * (i % 200)})
    with running(engine, tmp_path, bulk_actions=250, bulk_bytes=20_000, concurrency=3) as sink:
        sink.write(records)
        sink.flush()
        metrics = sink.metrics()
    assert metrics["documents_indexed"] == 3000
    assert metrics["bulk_requests"] >= 3000 * 60 // 20_000
    assert metrics["bulk_latency_p50_s"] > 0
    docs = engine.documents(f"{engine.prefix}-orders")
    assert len(docs) == 3000
    assert orjson.dumps(docs["2999"]) == orjson.dumps({"id": 2999, "text": "x" * 199})


def test_metrics_report_lag_in_records_and_seconds(engine: Target, tmp_path: Path) -> None:
    s = Stream()
    records = [r for i in range(10) for r in s.change("c", {"id": i})]
    with running(engine, tmp_path) as sink:
        log = sink.context.log
        log.create_topic(s.topic, TopicConfig())
        log.append(records[0].tp, [Record(r.key, r.value, r.timestamp_ms) for r in records])
        sink.write(records[:4])
        sink.flush()
        metrics = sink.metrics()
        assert metrics["lag_records"] == 6
        assert metrics["lag_seconds"] > 0
        sink.write(records[4:])
        sink.flush()
        metrics = sink.metrics()
    assert metrics["lag_records"] == 0
    assert metrics["lag_seconds"] == 0
    assert metrics["documents_indexed"] == 10
    assert metrics["documents_per_second"] > 0
