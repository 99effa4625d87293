"""The Kafka log backend over TLS, against a broker with an SSL listener (``up kafka --tls``).

TLS is librdkafka's, configured in ``log.kafka.config`` (``security.protocol: SSL``,
``ssl.ca.location``); librdkafka verifies the broker's certificate and host name by default
(``enable.ssl.certificate.verification``, ``ssl.endpoint.identification.algorithm: https``).
A pipeline's log opened that way appends and reads records; with another CA's certificate
it refuses to open, saying why (librdkafka's "SSL handshake failed").
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from hub.config import load_pipeline
from hub.errors import LogStorageError
from hub.runtime import open_pipeline_log
from log.api import Record, TopicConfig, TopicPartition
from tests.fixtures.services import KafkaCluster, ServiceFactory

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka_tls(start_service: ServiceFactory) -> KafkaCluster:
    server = start_service("kafka", "--tls")
    assert isinstance(server, KafkaCluster)
    return server


def _pipeline(tmp_path: Path, server: KafkaCluster, ca: str) -> Path:
    file = tmp_path / "p.yaml"
    file.write_text(
        "log:\n  backend: kafka\n  kafka:\n"
        f"    bootstrap: '{server.facts['KAFKA_SSL_BOOTSTRAP']}'\n"
        f"    config: {{security.protocol: SSL, ssl.ca.location: '{server.facts[ca]}'}}\n"
        "api: {enabled: false}\n"
    )
    return file


def test_the_log_on_kafka_appends_and_reads_over_verified_tls(
    kafka_tls: KafkaCluster, tmp_path: Path
) -> None:
    config = load_pipeline(_pipeline(tmp_path, kafka_tls, "TLS_CA"), env={})
    log = open_pipeline_log(config)
    try:
        topic = f"tls-{uuid.uuid4().hex[:8]}"
        log.create_topic(topic, TopicConfig(partitions=1))
        tp = TopicPartition(topic, 0)
        log.append(tp, [Record(b"k%d" % i, b"v%d" % i) for i in range(10)])
        got = log.read(tp, 0, timeout=20)
        assert [r.value for r in got] == [b"v%d" % i for i in range(10)]
    finally:
        log.close()


def test_the_log_on_kafka_refuses_a_broker_certificate_from_another_ca(
    kafka_tls: KafkaCluster, tmp_path: Path
) -> None:
    config = load_pipeline(_pipeline(tmp_path, kafka_tls, "TLS_OTHER_CA"), env={})
    with pytest.raises(LogStorageError, match="SSL handshake failed"):
        open_pipeline_log(config).close()
