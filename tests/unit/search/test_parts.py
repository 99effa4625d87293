"""Unit tests of the search sink's pure parts: ids, names, mappings, filters, bulk cutting."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from connectors.sink.search.bulk import PreparedBulk, _sort_out, split
from connectors.sink.search.config import SearchSinkConfig
from connectors.sink.search.documents import Action, BadRecordError, document_id
from connectors.sink.search.engine import _loads
from connectors.sink.search.indexes import next_generation
from connectors.sink.search.mapping import NUMERIC_STRING, index_name, infer_mappings
from connectors.sink.search.transforms import FilterError, RowFilter, Transform
from connectors.sink.search.versioning import version_of
from log.api import LogRecord


def test_a_one_column_key_is_its_value_as_text() -> None:
    assert document_id({"id": 42}) == "42"
    assert document_id({"id": "abc"}) == "abc"


def test_composite_keys_escape_the_separator_so_ids_never_collide() -> None:
    ids = {
        document_id({"a": "x|", "b": "y"}),
        document_id({"a": "x", "b": "|y"}),
        document_id({"a": "x\\", "b": "|y"}),
        document_id({"a": "x", "b": "y"}),
    }
    assert len(ids) == 4
    assert document_id({"a": 1, "b": "two"}) == "1|two"


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(BadRecordError, match="primary key"):
        document_id({})


def test_the_version_is_the_offset_plus_one() -> None:
    assert version_of(LogRecord("t", 0, 0, 0, None, None)) == 1
    assert version_of(LogRecord("t", 3, 41, 0, None, None)) == 42


@pytest.mark.parametrize(
    ("template", "topic", "source", "expected"),
    [
        ("{topic}", "shop.public.orders", None, "shop.public.orders"),
        ("{table}", "shop.public.Orders", None, "orders"),
        ("{schema}_{table}", "shop.public.orders", {"schema": "sales", "table": "o"}, "sales_o"),
        ("{source}-{table}", "legacy.orders", None, "legacy-orders"),
        ("_x {table}", "a.b.c", None, "x_c"),
        ("{table}", "a.b.we*ird?name", None, "we_ird_name"),
    ],
)
def test_index_names_render_the_template_and_become_valid(
    template: str, topic: str, source: dict[str, Any] | None, expected: str
) -> None:
    assert index_name(template, topic, source) == expected


def test_an_unknown_placeholder_is_a_config_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="placeholders are"):
        SearchSinkConfig(name="s", type="opensearch", topics=["t"], hosts=["http://h:9200"],
                         index="{nope}")


def test_delete_by_query_truncates_need_a_version_field() -> None:
    with pytest.raises(pydantic.ValidationError, match="version_field"):
        SearchSinkConfig(name="s", type="opensearch", topics=["t"], hosts=["http://h:9200"],
                         truncate="delete_by_query")


def test_the_type_name_sets_the_default_engine() -> None:
    cfg = SearchSinkConfig(name="s", type="elasticsearch", topics=["t"], hosts=["http://h"])
    assert cfg.engine_name == "elasticsearch"
    cfg = SearchSinkConfig(name="s", type="elasticsearch", topics=["t"], hosts=["http://h"],
                           engine="auto")
    assert cfg.engine_name == "auto"


def test_mappings_are_inferred_from_values() -> None:
    props = infer_mappings([{
        "i": 1, "f": 1.5, "b": False, "ts": "2024-01-31T12:00:00.123456",
        "tz": "2024-01-31T12:00:00Z", "d": "2024-01-31", "s": "hello", "n": "12.50",
        "o": {"a": 1}, "arr": [None, 3], "null": None, "infinity": "infinity",
    }])["properties"]
    assert {k: v["type"] for k, v in props.items()} == {
        "i": "long", "f": "double", "b": "boolean", "ts": "date", "tz": "date", "d": "date",
        "s": "text", "n": "double", "o": "object", "arr": "long", "infinity": "text",
    }
    assert props["s"]["fields"]["keyword"]["type"] == "keyword"


def test_decimal_strings_map_as_numbers_only_when_every_sampled_value_is_one() -> None:
    props = infer_mappings([
        {"price": "12.50", "big": "-12345678901234567890.000000000001", "zero": "0.5",
         "code": "0042", "mixed": "17", "late": None, "tags": ["1.5", "2"], "exp": "1e5"},
        {"price": "7", "big": "3", "zero": "0", "code": "0043", "mixed": "seventeen",
         "late": "99.9", "tags": [], "exp": "1"},
    ])["properties"]
    assert props["price"] == NUMERIC_STRING
    assert props["price"]["ignore_malformed"] is True
    assert props["price"]["fields"]["keyword"]["type"] == "keyword"
    for column in ("big", "zero", "late", "tags"):
        assert props[column]["type"] == "double", column
    for column in ("code", "mixed", "exp"):  # leading zeros, words, exponents: text
        assert props[column]["type"] == "text", column
    props["price"]["type"] = "changed"
    assert NUMERIC_STRING["type"] == "double"  # each mapping is a copy


@pytest.mark.parametrize(
    ("expression", "row", "keeps"),
    [
        ("status == 'paid'", {"status": "paid"}, True),
        ("status != 'paid'", {"status": "paid"}, False),
        ("total >= 10", {"total": "12.50"}, True),  # numeric strings compare as numbers
        ("total >= 10", {"total": 9}, False),
        ("total > 10 and not archived", {"total": 11, "archived": False}, True),
        ("a == 1 or b == 2", {"a": 0, "b": 2}, True),
        ("status in ['a', 'b']", {"status": "b"}, True),
        ("qty not in [1, 2]", {"qty": 3}, True),
        ("deleted_at is null", {}, True),
        ("deleted_at is not None", {"deleted_at": "2024-01-01"}, True),
        ("deleted_at == null", {"deleted_at": None}, True),
        ("total > 10", {"total": None}, False),  # null is not greater than anything
        ("1 < qty < 5", {"qty": 3}, True),
        ("flag == true", {"flag": True}, True),
    ],
)
def test_filter_expressions(expression: str, row: dict[str, Any], keeps: bool) -> None:
    assert RowFilter(expression).matches(row) is keeps


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('x')", "a.b == 1", "a[0] == 1", "a + 1 == 2", "lambda: 1",
     "a == [b]", "(", "x if y else z"],
)
def test_filters_refuse_anything_but_comparisons(expression: str) -> None:
    with pytest.raises(ValueError, match="filter"):
        RowFilter(expression)


def test_a_filter_comparing_incomparable_values_raises_a_filter_error() -> None:
    with pytest.raises(FilterError, match="different types"):
        RowFilter("name > 3").matches({"name": "abc"})
    with pytest.raises(FilterError, match="different types"):
        RowFilter("qty in 'abc'").matches({"qty": 3})


def test_transforms_include_exclude_mask_then_rename() -> None:
    t = Transform(None, frozenset({"id", "email", "total", "x"}), frozenset({"x"}),
                  frozenset({"email"}), {"total": "amount"})
    assert t.apply({"id": 1, "email": "a@b", "total": 3, "x": 1, "other": 2}) == {
        "id": 1, "email": "***", "amount": 3,
    }
    assert t.apply({"id": 1, "email": None}) == {"id": 1, "email": None}


def _item(i: int, size: int) -> tuple[Action, bytes]:
    return Action("delete", "i", str(i), 1), b"x" * size


def test_bulks_are_cut_by_count_and_by_bytes() -> None:
    items = [_item(i, 10) for i in range(25)]
    assert [len(r) for r in split(items, 10, 10_000)] == [10, 10, 5]
    assert [len(r) for r in split(items, 100, 35)] == [3] * 8 + [1]
    big = [_item(0, 100), _item(1, 1), _item(2, 100)]
    assert [len(r) for r in split(big, 100, 50)] == [1, 1, 1]


def test_bulk_answers_are_sorted_into_done_conflicts_retries_and_rejections() -> None:
    items = [_item(i, 1) for i in range(5)]
    answer = {"errors": True, "items": [
        {"delete": {"status": 200}},
        {"delete": {"status": 404}},
        {"delete": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
        {"delete": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
        {"delete": {"status": 400, "error": {"type": "mapper_parsing_exception",
                                             "reason": "bad", "caused_by": {
                                                 "type": "number_format_exception",
                                                 "reason": "x"}}}},
    ]}
    attempt = _sort_out(PreparedBulk.of(items), answer)
    assert attempt.done == 2
    assert attempt.conflicts == 1
    assert [a.doc_id for a, _ in attempt.retry] == ["3"]
    assert [(a.doc_id, r) for a, r in attempt.rejected] == [
        ("4", "400 mapper_parsing_exception: bad (caused by number_format_exception: x)")
    ]


def test_alias_generations_count_up() -> None:
    assert next_generation("orders", []) == 1
    assert next_generation("orders", ["orders-v1", "orders-v3", "other-v9"]) == 4


def test_actions_encode_as_bulk_lines_with_external_versions() -> None:
    lines = Action("index", "i", "7", 5, {"a": 1}).encode().splitlines()
    assert lines == [
        b'{"index":{"_index":"i","_id":"7","version":5,"version_type":"external"}}',
        b'{"a":1}',
    ]
    assert Action("delete", "i", "7", 6).encode(version_type="external_gte") == (
        b'{"delete":{"_index":"i","_id":"7","version":6,"version_type":"external_gte"}}\n'
    )


def test_a_bulk_answer_without_failures_is_not_parsed_and_others_are() -> None:
    assert _loads('{"errors":false,"items":[{"index":{"status":201}}, broken') == {
        "errors": False
    }
    answer = '{"errors":true,"items":[{"index":{"status":400,"error":{"type":"x"}}}]}'
    assert _loads(answer)["items"][0]["index"]["status"] == 400
    assert _loads('{"acknowledged":true}') == {"acknowledged": True}


def test_an_overlong_filter_is_refused_before_it_is_parsed() -> None:
    # 3,000 nested "not" would make ast.parse raise RecursionError and break the
    # interpreter's AST state for the rest of the process (CPython 3.11)
    with pytest.raises(ValueError, match="at most 1000 are allowed"):
        RowFilter("not " * 3000 + "x")
    assert RowFilter("a == 1").matches({"a": 1})
