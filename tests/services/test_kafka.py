"""services/run and Kafka: one broker or three, real clients, replication as configured."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.fixtures.services import KafkaCluster
from tests.services.helpers import run

pytestmark = pytest.mark.integration


def _create_topic(bootstrap: str, name: str, partitions: int, replicas: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, replicas)])
    futures[name].result(timeout=30)


def test_one_broker_serves_a_transactional_producer_and_a_read_committed_consumer(
    kafka: KafkaCluster,
) -> None:
    topic = f"services-{uuid.uuid4().hex[:8]}"
    _create_topic(kafka.bootstrap, topic, partitions=1, replicas=1)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "transactional.id": topic})
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed")
    producer.commit_transaction(60)

    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": topic,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    try:
        consumer.subscribe([topic])
        messages = consumer.consume(num_messages=1, timeout=60)
    finally:
        consumer.close()
    assert [(m.key(), m.value()) for m in messages] == [(b"k", b"committed")]


def test_metadata_lists_the_single_broker(kafka: KafkaCluster) -> None:
    metadata = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=30)
    assert len(metadata.brokers) == kafka.brokers == 1
    assert kafka.version.startswith("4.")


@pytest.mark.slow
def test_three_brokers_replicate_topics_and_the_offsets_topic_three_ways(
    kafka_cluster: KafkaCluster,
) -> None:
    assert kafka_cluster.brokers == 3
    assert len(kafka_cluster.bootstrap.split(",")) == 3
    topic = f"services-rf3-{uuid.uuid4().hex[:8]}"
    _create_topic(kafka_cluster.bootstrap, topic, partitions=3, replicas=3)
    producer = Producer({"bootstrap.servers": kafka_cluster.bootstrap, "acks": "all"})
    for i in range(30):
        producer.produce(topic, key=str(i).encode(), value=b"x")
    assert producer.flush(60) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_cluster.bootstrap,
            "group.id": topic,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        received = consumer.consume(num_messages=30, timeout=60)
        assert len(received) == 30
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()

    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
    metadata = admin.list_topics(timeout=30)
    assert len(metadata.brokers) == 3
    for name in (topic, "__consumer_offsets"):
        partitions = metadata.topics[name].partitions.values()
        assert {len(p.replicas) for p in partitions} == {3}, name


def test_broker_count_other_than_one_or_three_is_a_usage_error(tmp_path: Path) -> None:
    result = run("up", "kafka", "--dir", tmp_path, "--brokers", "2")
    assert result.returncode == 2
    assert "--brokers must be 1 or 3" in result.stderr


def test_a_one_broker_directory_cannot_be_restarted_as_three() -> None:
    kafka_dir = Path(tempfile.mkdtemp(prefix="changehub-test-kafka-"))
    try:
        assert run("up", "kafka", "--dir", kafka_dir).returncode == 0
        assert run("down", "kafka", "--dir", kafka_dir).returncode == 0
        again = run("up", "kafka", "--dir", kafka_dir, "--brokers", "3")
        assert again.returncode == 2
        assert "has 1 broker(s)" in again.stderr
    finally:
        run("down", "kafka", "--dir", kafka_dir)
        shutil.rmtree(kafka_dir)
