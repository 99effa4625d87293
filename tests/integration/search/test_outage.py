"""The engine goes down during load and comes back: the sink waits, nothing is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import opensearchpy
import pytest

from connectors.sink.search import SearchSink, SearchSinkConfig
from connectors.testing import DeadLetters, make_context
from hub.errors import RetriableError
from tests.fixtures.services import ServiceFactory
from tests.integration.search.events import Stream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE_S = 120.0


def test_a_flush_during_an_outage_waits_and_then_everything_arrives(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    node = start_service("opensearch")
    url = node.facts["OPENSEARCH_URL"]
    config = SearchSinkConfig(
        name="search", type="opensearch", topics=["shop.*"], hosts=[url],
        index="outage-{table}", retry_timeout_s=DEADLINE_S, request_timeout_s=5,
    )
    sink = SearchSink(config, make_context("search", tmp_path, DeadLetters(False)))
    sink.start({})
    s = Stream()
    first = [r for i in range(500) for r in s.change("c", {"id": i, "v": 1})]
    second = [r for i in range(250, 750) for r in s.change("u" if i < 500 else "c",
                                                            {"id": i, "v": 2})]
    try:
        sink.write(first)
        sink.flush()
        node.stop()
        sink.write(second)
        flushed: list[object] = []
        flusher = threading.Thread(target=lambda: flushed.append(sink.flush()), daemon=True)
        flusher.start()
        # The flush must be waiting (retrying), not failing, while the node is down.
        deadline = time.monotonic() + 30
        while sink.bulk_retries == 0:
            assert time.monotonic() < deadline, "the flush never retried during the outage"
            assert flusher.is_alive(), "the flush ended while the engine was down"
            time.sleep(0.05)
        assert flusher.is_alive()
        node.start()
        flusher.join(DEADLINE_S)
        assert not flusher.is_alive(), "the flush did not finish after the engine came back"
        assert flushed == [{second[0].tp: second[-1].offset + 1}]
    finally:
        sink.stop()
    client = opensearchpy.OpenSearch([url])
    client.indices.refresh(index="outage-orders")
    hits = client.search(index="outage-orders", body={"size": 1000})["hits"]["hits"]
    assert {h["_id"]: h["_source"]["v"] for h in hits} == {
        str(i): 1 if i < 250 else 2 for i in range(750)
    }
    client.close()


def test_an_outage_longer_than_the_retry_time_hands_the_failure_to_the_hub(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    node = start_service("opensearch")
    url = node.facts["OPENSEARCH_URL"]
    config = SearchSinkConfig(
        name="search", type="opensearch", topics=["shop.*"], hosts=[url],
        index="outage-{table}", retry_timeout_s=1, request_timeout_s=2,
    )
    sink = SearchSink(config, make_context("search", tmp_path, DeadLetters(False)))
    sink.start({})
    node.stop()
    try:
        sink.write(Stream().change("c", {"id": 1}))
        with pytest.raises(RetriableError, match="cannot reach opensearch"):
            sink.flush()
    finally:
        sink.stop()
        node.start()
    restarted = SearchSink(config, make_context("search", tmp_path, DeadLetters(False)))
    restarted.start({})
    restarted.stop()
