"""Opening the Kafka backend: from a pipeline's log.kafka settings, and against a cluster
that is not there."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hub.config import KafkaLogConfig
from hub.errors import LogStorageError
from log.api import Durability, TopicConfig, TopicPartition
from log.factory import open_log
from log.kafka import KafkaLog
from tests.fixtures.services import KafkaCluster
from tests.integration.kafka.conftest import unique

pytestmark = pytest.mark.integration


def test_factory_opens_a_kafka_log_from_the_pipeline_settings(kafka: KafkaCluster) -> None:
    settings = KafkaLogConfig(bootstrap=kafka.bootstrap, config={"client.id": "changehub-test"})
    log = open_log("kafka", Path("unused"), Durability(), TopicConfig(partitions=3), kafka=settings)
    try:
        assert isinstance(log, KafkaLog)
        name = unique("factory")
        log.create_topic(name, log.default_topic_config)
        assert log.describe_topic(name).partitions[2].end_offset == 0
        assert log.end_offset(TopicPartition(name, 2)) == 0
    finally:
        log.close()


def test_unreachable_cluster_is_a_storage_error_naming_the_servers() -> None:
    start = time.monotonic()
    with pytest.raises(LogStorageError, match=r"127\.0\.0\.1:1\b.*log\.kafka\.bootstrap"):
        KafkaLog("127.0.0.1:1", timeout=2.0)
    assert time.monotonic() - start < 10
