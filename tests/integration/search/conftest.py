"""Real engines for the search sink's integration tests: OpenSearch 2.19 and Elasticsearch 7.17.

``engine`` is parametrized over both, so every test using it runs against each. Each test
gets its own index prefix, so tests share the session's nodes without seeing each other's
documents. The tests read back with opensearch-py, which talks to both engines (it does no
product check), independently of the sink's own client choice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import opensearchpy
import pytest

pytestmark = pytest.mark.integration


@dataclass
class Target:
    kind: str  # "opensearch" | "elasticsearch"
    url: str
    version: str
    prefix: str  # unique per test; index templates start with it
    client: opensearchpy.OpenSearch

    def documents(self, index: str) -> dict[str, dict[str, Any]]:
        """id -> _source of every document in ``index`` (refreshed first); {} if no index."""
        if not self.client.indices.exists(index=index):
            return {}
        self.client.indices.refresh(index=index)
        out: dict[str, dict[str, Any]] = {}
        answer = self.client.search(
            index=index, body={"query": {"match_all": {}}, "size": 10000}, version=True
        )
        for hit in answer["hits"]["hits"]:
            out[hit["_id"]] = hit["_source"]
        return out

    def versions(self, index: str) -> dict[str, int]:
        self.client.indices.refresh(index=index)
        answer = self.client.search(
            index=index, body={"query": {"match_all": {}}, "size": 10000}, version=True
        )
        return {h["_id"]: h["_version"] for h in answer["hits"]["hits"]}


@pytest.fixture(params=["opensearch", "elasticsearch"])
def engine(request: pytest.FixtureRequest) -> Iterator[Target]:
    server = request.getfixturevalue(request.param)
    client = opensearchpy.OpenSearch([server.url])
    prefix = f"t{uuid.uuid4().hex[:10]}"
    try:
        yield Target(request.param, server.url, server.version, prefix, client)
    finally:
        client.indices.delete(index=f"{prefix}*", ignore_unavailable=True)
        client.close()
