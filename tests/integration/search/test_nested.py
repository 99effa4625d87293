"""Orders embedding their customer and their lines, kept current from the log alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.sink.search import SearchSink, SearchSinkConfig
from connectors.testing import DeadLetters, make_context
from log.api import TopicPartition
from tests.integration.search.conftest import Target
from tests.integration.search.events import Stream

pytestmark = pytest.mark.integration


def _sink(engine: Target, data: Path) -> SearchSink:
    config = SearchSinkConfig.model_validate({
        "name": "orders", "type": engine.kind, "hosts": [engine.url],
        "topics": ["shop.public.orders", "shop.public.customers", "shop.public.lines"],
        "index": engine.prefix + "-{table}",
        "nested": [
            {"field": "customer", "topic": "shop.public.customers",
             "parent_key": "customer_id", "foreign_key": "id", "many": False,
             "transforms": {"exclude": ["secret"]}},
            {"field": "lines", "topic": "shop.public.lines",
             "parent_key": "id", "foreign_key": "order_id"},
        ],
    })
    return SearchSink(config, make_context("orders", data, DeadLetters(False)))


def test_documents_follow_changes_of_parents_and_children_across_restarts(
    engine: Target, tmp_path: Path
) -> None:
    orders = Stream("shop.public.orders")
    customers = Stream("shop.public.customers")
    lines = Stream("shop.public.lines")
    sink = _sink(engine, tmp_path)
    sink.start({})
    try:
        sink.write(customers.change("c", {"id": 1, "name": "Ada", "secret": "x"}))
        sink.write(orders.change("c", {"id": 10, "customer_id": 1}))
        sink.write(orders.change("c", {"id": 11, "customer_id": 1}))
        sink.write(lines.change("c", {"id": 100, "order_id": 10, "qty": 1}))
        sink.write(lines.change("c", {"id": 101, "order_id": 10, "qty": 2}))
        sink.flush()
    finally:
        sink.stop()
    index = f"{engine.prefix}-orders"
    assert engine.documents(index) == {
        "10": {"id": 10, "customer_id": 1, "customer": {"id": 1, "name": "Ada"},
               "lines": [{"id": 100, "order_id": 10, "qty": 1},
                         {"id": 101, "order_id": 10, "qty": 2}]},
        "11": {"id": 11, "customer_id": 1, "customer": {"id": 1, "name": "Ada"},
               "lines": []},
    }

    # A new run resumes from the store in its data directory, whatever the hub says.
    sink = _sink(engine, tmp_path)
    tp = TopicPartition(customers.topic, 0)
    assert sink.start({tp: 0}) == {tp: customers.offset}
    try:
        sink.write(customers.change("u", {"id": 1, "name": "Ada L.", "secret": "y"}))
        sink.write(lines.change("u", {"id": 101, "order_id": 11, "qty": 2}))  # moved
        sink.write(orders.change("d", key={"id": 10}))
        sink.flush()
    finally:
        sink.stop()
    assert engine.documents(index) == {
        "11": {"id": 11, "customer_id": 1, "customer": {"id": 1, "name": "Ada L."},
               "lines": [{"id": 101, "order_id": 11, "qty": 2}]},
    }
