"""services/run and OpenSearch: the embedded node indexes, searches, runs its modules."""

from __future__ import annotations

import pytest
from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import ConflictError
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

from tests.fixtures.services import OpenSearchServer, ServiceFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def client(opensearch: OpenSearchServer) -> OpenSearch:
    return OpenSearch(hosts=[opensearch.url])


def test_node_answers_as_opensearch_2_19(client: OpenSearch, opensearch: OpenSearchServer) -> None:
    info = client.info()
    assert info["version"]["distribution"] == "opensearch"
    assert info["version"]["number"] == opensearch.version
    assert opensearch.version.startswith("2.19.")


def test_bulk_index_then_search_finds_the_documents(client: OpenSearch) -> None:
    client.indices.create(
        index="services-bulk",
        body={
            "settings": {"number_of_replicas": 0},
            # scaled_float comes from the mapper-extras module.
            "mappings": {"properties": {"price": {"type": "scaled_float", "scaling_factor": 100}}},
        },
    )
    docs = [{"_index": "services-bulk", "_id": str(i), "price": i / 4} for i in range(100)]
    ok, errors = helpers.bulk(client, docs, refresh=True)
    assert (ok, errors) == (100, [])
    result = client.search(index="services-bulk", body={"query": {"range": {"price": {"gte": 20}}}})
    assert result["hits"]["total"]["value"] == 20


def test_painless_and_reindex_modules_are_loaded(client: OpenSearch) -> None:
    client.index(index="services-src", id="1", body={"n": 1}, refresh=True)
    client.update_by_query(
        index="services-src",
        body={"script": {"lang": "painless", "source": "ctx._source.n += 41"}},
        refresh=True,
    )
    client.reindex(body={"source": {"index": "services-src"}, "dest": {"index": "services-dst"}})
    client.indices.refresh(index="services-dst")
    assert client.get(index="services-dst", id="1")["_source"] == {"n": 42}


def test_external_versions_reject_an_older_write(client: OpenSearch) -> None:
    client.index(
        index="services-versions", id="1", body={"v": 5}, version=5, version_type="external"
    )
    with pytest.raises(ConflictError):
        client.index(
            index="services-versions", id="1", body={"v": 4}, version=4, version_type="external"
        )
    assert client.get(index="services-versions", id="1")["_source"] == {"v": 5}


def test_analysis_common_analyzers_are_available(client: OpenSearch) -> None:
    tokens = client.indices.analyze(
        body={"tokenizer": "whitespace", "filter": ["lowercase", "reverse"], "text": "Abc DEF"}
    )
    assert [t["token"] for t in tokens["tokens"]] == ["cba", "fed"]


@pytest.mark.slow
def test_stopped_node_restarts_with_its_documents_on_the_same_url(
    start_service: ServiceFactory,
) -> None:
    node = start_service("opensearch")
    assert isinstance(node, OpenSearchServer)
    OpenSearch(hosts=[node.url]).index(index="kept", id="1", body={"v": 1}, refresh=True)
    node.stop()
    with pytest.raises(OpenSearchConnectionError):
        OpenSearch(hosts=[node.url], max_retries=0).info()
    again = node.start()
    assert again.url == node.url
    assert OpenSearch(hosts=[again.url]).get(index="kept", id="1")["_source"] == {"v": 1}
