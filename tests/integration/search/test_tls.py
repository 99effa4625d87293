"""The search sink over HTTPS served by the engine itself (``services/run up opensearch --tls``).

The OpenSearch node's own Netty HTTP server speaks TLS with a certificate from a throw-away
CA (services/tls.py, ``OpenSearchNode.java``): no proxy in between. The sink verifies the
chain and the host name against ``ca_certs`` (``verify_certs`` is on by default) and writes
through TLS; a certificate from another CA, or no CA given at all (the system's trust store
does not know the test CA), is refused with the reason.
"""

from __future__ import annotations

from pathlib import Path

import opensearchpy
import pytest

from connectors.sink.search import SearchSink, SearchSinkConfig
from connectors.sink.search.engine import EngineUnavailableError, connect
from connectors.testing import DeadLetters, make_context
from hub.errors import RetriableError
from log.factory import open_log
from tests.fixtures.services import OpenSearchServer, ServiceFactory
from tests.integration.search.events import Stream

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def https_node(start_service: ServiceFactory) -> OpenSearchServer:
    server = start_service("opensearch", "--tls")
    assert isinstance(server, OpenSearchServer)
    assert server.url.startswith("https://")
    return server


def _sink(node: OpenSearchServer, tmp_path: Path, ca: str | None) -> SearchSink:
    config = SearchSinkConfig(
        name="search", type="opensearch", topics=["shop.*"], hosts=[node.url], ca_certs=ca,
        index="tls-{table}", retry_timeout_s=5, request_timeout_s=10,
    )
    context = make_context("search", tmp_path / "data", DeadLetters(False))
    return SearchSink(config, context)


def test_the_sink_writes_over_the_engines_own_https_verifying_its_certificate(
    https_node: OpenSearchServer, tmp_path: Path
) -> None:
    ca = https_node.facts["TLS_CA"]
    s = Stream()
    records = [*s.change("c", {"id": 1, "total": 10}), *s.change("c", {"id": 2, "total": 20}),
               *s.change("u", {"id": 1, "total": 11}), *s.change("d", key={"id": 2})]
    sink = _sink(https_node, tmp_path, ca)
    with open_log("embedded", tmp_path / "log") as log:
        sink.context.log = log
        sink.start({})
        try:
            assert sink.engine_kind == "opensearch"
            sink.write(records)
            assert sink.flush() == {records[0].tp: len(records)}
        finally:
            sink.stop()
    # Read back through a separate verifying client: the documents went over TLS to the node.
    client = opensearchpy.OpenSearch([https_node.url], ca_certs=ca, verify_certs=True)
    try:
        client.indices.refresh(index="tls-orders")
        hits = client.search(index="tls-orders", body={"query": {"match_all": {}}})["hits"]
        assert {h["_id"]: h["_source"] for h in hits["hits"]} == {"1": {"id": 1, "total": 11}}
    finally:
        client.close()
    # And the port speaks nothing but TLS: a plain HTTP request gets no answer.
    plain = opensearchpy.OpenSearch([https_node.url.replace("https://", "http://")],
                                    max_retries=0, timeout=5)
    try:
        with pytest.raises(opensearchpy.ConnectionError):
            plain.info()
    finally:
        plain.close()


@pytest.mark.parametrize("trust", ["other CA", "system trust store"])
def test_a_certificate_the_sink_cannot_verify_is_refused_with_the_reason(
    https_node: OpenSearchServer, tmp_path: Path, trust: str
) -> None:
    ca = https_node.facts["TLS_OTHER_CA"] if trust == "other CA" else None
    with pytest.raises(EngineUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        connect("opensearch", [https_node.url], ca_certs=ca, timeout=10).close()
    sink = _sink(https_node, tmp_path, ca)
    with pytest.raises(RetriableError, match="CERTIFICATE_VERIFY_FAILED"):
        sink.start({})  # the hub retries it with backoff: the certificate may be fixed
    sink.stop()
    # The node itself was fine all along: with the right CA it answers.
    engine = connect("opensearch", [https_node.url], ca_certs=https_node.facts["TLS_CA"])
    assert engine.version == https_node.version
    engine.close()


def test_doctor_tells_an_untrusted_certificate_from_a_trusted_one(
    https_node: OpenSearchServer, tmp_path: Path
) -> None:
    # `changehub doctor` against the real HTTPS node: without the CA the certificate is
    # not trusted and the finding says so with its fix; with the CA the engine is reached
    from hub.config import load_pipeline
    from hub.doctor import diagnose

    def findings(ca: str | None) -> list[tuple[str, str, str]]:
        extra = f", ca_certs: '{ca}'" if ca else ""
        file = tmp_path / "doctor.yaml"
        file.write_text(
            f"log: {{backend: embedded, path: '{tmp_path / 'log'}'}}\napi: {{enabled: false}}\n"
            f"sinks: [{{name: search, type: opensearch, topics: [a], "
            f"hosts: ['{https_node.url}']{extra}}}]\n")
        return [(f.level, f.check, f"{f.message} {f.fix or ''}")
                for f in diagnose(load_pipeline(file)) if "search" in (f.system or "")]

    [(level, check, text)] = findings(None)
    assert (level, check) == ("error", "reachable"), text
    assert "certificate verify failed" in text.lower() and "set ca_certs" in text
    [(level, check, text)] = findings(https_node.facts["TLS_CA"])
    assert (level, check) == ("ok", "reachable"), text
    assert "opensearch" in text
