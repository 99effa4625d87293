"""services/run and Elasticsearch 7.17: the embedded node answers as Elasticsearch and indexes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.fixtures.services import ElasticsearchServer

pytestmark = pytest.mark.integration


def _call(method: str, url: str, body: Any = None) -> tuple[int, dict[str, Any], Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.load(error)


def test_node_answers_as_elasticsearch_7_17(elasticsearch: ElasticsearchServer) -> None:
    status, headers, info = _call("GET", elasticsearch.url)
    assert status == 200
    # The official Python client refuses a server without this header.
    assert headers.get("X-elastic-product") == "Elasticsearch"
    assert info["version"]["number"] == elasticsearch.version
    assert elasticsearch.version.startswith("7.17.")


def test_external_versions_reject_an_older_write(elasticsearch: ElasticsearchServer) -> None:
    doc = f"{elasticsearch.url}/services-versions/_doc/1"
    assert _call("PUT", f"{doc}?version=5&version_type=external", {"v": 5})[0] == 201
    status, _, error = _call("PUT", f"{doc}?version=4&version_type=external", {"v": 4})
    assert status == 409
    assert error["error"]["type"] == "version_conflict_engine_exception"
    assert _call("GET", doc)[2]["_source"] == {"v": 5}


def test_bulk_then_delete_by_query(elasticsearch: ElasticsearchServer) -> None:
    lines = []
    for i in range(10):
        lines += [
            json.dumps({"index": {"_index": "services-bulk", "_id": str(i)}}),
            f'{{"n": {i}}}',
        ]
    request = urllib.request.Request(
        f"{elasticsearch.url}/_bulk?refresh=true",
        data=("\n".join(lines) + "\n").encode(),
        method="POST",
        headers={"Content-Type": "application/x-ndjson"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response)["errors"] is False
    # delete_by_query comes from the reindex module.
    status, _, result = _call(
        "POST",
        f"{elasticsearch.url}/services-bulk/_delete_by_query?refresh=true",
        {"query": {"range": {"n": {"gte": 5}}}},
    )
    assert (status, result["deleted"]) == (200, 5)
    assert _call("GET", f"{elasticsearch.url}/services-bulk/_count")[2]["count"] == 5
