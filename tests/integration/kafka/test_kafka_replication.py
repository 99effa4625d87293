"""Replication: with three brokers, replication factor 3 and min.insync.replicas 2, killing
the broker that leads the partitions being written loses nothing that was acknowledged."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback

import pytest

from hub.errors import LogError
from log.api import Record, TopicConfig, TopicPartition
from log.kafka import KafkaLog
from tests.fixtures.services import KafkaCluster, ServiceFactory
from tests.integration.kafka.conftest import unique
from tests.integration.kafka.test_log_contract import read_all

pytestmark = pytest.mark.integration


def broker_pid(cluster: KafkaCluster, node: int) -> int:
    """The pid of broker ``node`` (1-based), from the state file ``services/run`` keeps."""
    state = json.loads((cluster.dir / "kafka" / "state.json").read_text())
    return int(state["processes"][node - 1]["pid"])


def leader_of(log: KafkaLog, tp: TopicPartition) -> int:
    meta = log._admin.client.list_topics(topic=tp.topic, timeout=10)
    return int(meta.topics[tp.topic].partitions[tp.partition].leader)


class Writer(threading.Thread):
    """Appends numbered records (plain to ``plain``, checkpointed to ``tx``) until stopped."""

    def __init__(self, log: KafkaLog, plain: TopicPartition, tx: TopicPartition, source: str):
        super().__init__(daemon=True)
        self.log, self.plain, self.tx, self.source = log, plain, tx, source
        self.stop = threading.Event()
        self.acked_plain: list[int] = []
        self.acked_tx: list[int] = []
        self.failures: list[str] = []
        self.unexpected: list[str] = []  # anything but a LogError: the log's contract broken

    def run(self) -> None:
        try:
            self._write()
        except Exception:  # recorded for the test to fail with, not lost in the thread
            self.unexpected.append(traceback.format_exc())

    def _write(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                self.log.append(self.plain, [Record(b"k", b"%d" % n)])
                self.acked_plain.append(n)
            except LogError as e:
                self.failures.append(f"append {n}: {e}")
            try:
                self.log.append_checkpointed(
                    self.source, {self.tx: [Record(b"k", b"%d" % n)]}, {"n": n}
                )
                self.acked_tx.append(n)
            except LogError as e:
                self.failures.append(f"checkpointed {n}: {e}")

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked_plain) + len(self.acked_tx) < count:
            assert not self.unexpected, f"the writer died: {self.unexpected[0]}"
            assert time.monotonic() < deadline, f"writer stuck: {self.failures[-3:]}"
            time.sleep(0.05)


def check_no_acked_loss(values: list[int], acked: list[int], sent: int) -> None:
    assert values == sorted(set(values)), "records duplicated or out of order"
    assert set(acked) <= set(values), f"acknowledged but lost: {sorted(set(acked) - set(values))}"
    assert all(1 <= v <= sent for v in values)


@pytest.mark.slow  # a cluster of three; Kafka drops the dead follower from the ISR after 30 s
def test_killing_the_leader_of_three_brokers_loses_nothing_acknowledged(
    start_service: ServiceFactory,
) -> None:
    cluster = start_service("kafka", "--brokers", "3")
    assert isinstance(cluster, KafkaCluster)
    log = KafkaLog(cluster.bootstrap, replication_factor=3, min_insync_replicas=2, timeout=30.0)
    topic, source = unique("replicated"), unique("src")
    plain, tx = TopicPartition(topic, 0), TopicPartition(topic, 1)
    writer = Writer(log, plain, tx, source)
    try:
        log.create_topic(
            topic, TopicConfig(partitions=2, replication_factor=3, min_insync_replicas=2)
        )
        assert log.topic_config(topic).replication_factor == 3
        assert log.topic_config(topic).min_insync_replicas == 2
        writer.start()
        writer.wait_for(10, timeout=60)
        victim = leader_of(log, plain)
        os.kill(broker_pid(cluster, victim), signal.SIGKILL)
        before = len(writer.acked_plain) + len(writer.acked_tx)
        writer.wait_for(before + 10, timeout=120)  # writes go on with two brokers
        assert leader_of(log, plain) != victim
        writer.stop.set()
        writer.join(60)
        assert not writer.is_alive()
        sent = max(writer.acked_plain + writer.acked_tx + [0]) + 1

        plain_values = [int(r.value or b"0") for r in read_all(log, plain)]
        tx_values = [int(r.value or b"0") for r in read_all(log, tx)]
        check_no_acked_loss(plain_values, writer.acked_plain, sent)
        check_no_acked_loss(tx_values, writer.acked_tx, sent)
        checkpoint = log.last_checkpoint(source)
        assert checkpoint is not None and checkpoint["n"] == max(writer.acked_tx)
    finally:
        writer.stop.set()
        log.close()
