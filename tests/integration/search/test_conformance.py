"""The sink conformance suite on the search sink, against real OpenSearch and Elasticsearch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pytest

from connectors.sink.search import SearchSink, SearchSinkConfig
from connectors.testing import TOPICS, SinkConformance, SinkHarness, final_rows
from log.api import LogRecord
from tests.integration.search.conftest import Target

pytestmark = pytest.mark.integration


class SearchSinkHarness(SinkHarness):
    sink_class = SearchSink
    stores_offsets = False  # the versions make replays harmless instead

    def __init__(self, target: Target) -> None:
        self.target = target

    def config(self, name: str) -> SearchSinkConfig:
        return SearchSinkConfig(
            name=name, type=self.target.kind, topics=["conformance.*"], hosts=[self.target.url],
            index=self.target.prefix + "-{topic}", bulk_actions=7, retry_timeout_s=5,
        )

    def state(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for topic in TOPICS:
            docs = self.target.documents(f"{self.target.prefix}-{topic}")
            if docs:
                out[topic] = {orjson.dumps({"id": int(i)}).decode(): d for i, d in docs.items()}
        return out

    def expected(self, records: Sequence[LogRecord]) -> dict[str, dict[str, dict[str, Any]]]:
        return {t: rows for t, rows in final_rows(records).items() if rows}


class TestSearchSinkConformance(SinkConformance):
    @pytest.fixture
    def sink_harness(self, engine: Target) -> Iterator[SearchSinkHarness]:
        yield SearchSinkHarness(engine)
