"""Checkpointed appends on Kafka are transactions: a writer killed mid-transaction leaves
nothing visible to read_committed readers, and its checkpoint unchanged."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from log.api import Record, TopicConfig, TopicPartition
from log.kafka import KafkaLog
from tests.fixtures.services import KafkaCluster
from tests.integration.kafka.conftest import unique
from tests.integration.kafka.test_log_contract import read_all

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def start_writer(bootstrap: str, topic: str, source: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", f"{__package__}.txn_writer", bootstrap, topic, source, mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill(proc: subprocess.Popen[str]) -> str:
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return out


def uncommitted_values(bootstrap: str, tp: TopicPartition) -> list[bytes]:
    """What a read_uncommitted consumer sees: proves the killed transaction's records exist."""
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as KafkaTopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("probe"),
            "isolation.level": "read_uncommitted",
            "enable.auto.commit": False,
        }
    )
    try:
        c.assign([KafkaTopicPartition(tp.topic, tp.partition, 0)])
        out: list[bytes] = []
        for _ in range(50):
            out += [m.value() or b"" for m in c.consume(1000, 0.2) if m.error() is None]
            if any(v.startswith(b"uncommitted") for v in out):
                break
        return out
    finally:
        c.close()


@pytest.fixture
def writer_log(kafka: KafkaCluster) -> KafkaLog:
    return KafkaLog(kafka.bootstrap, timeout=20.0)


def test_killed_transaction_is_invisible_and_leaves_the_checkpoint(
    kafka: KafkaCluster, writer_log: KafkaLog
) -> None:
    topic, source = unique("txn"), unique("src")
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    log = writer_log
    try:
        log.create_topic(topic, TopicConfig(partitions=2))
        log.append_checkpointed(source, {p0: [Record(b"k", b"committed-0")]}, {"n": 0})
        log.close()

        proc = start_writer(kafka.bootstrap, topic, source, "hang")
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line != "IN-TRANSACTION\n":
            proc.kill()
            raise AssertionError(f"writer did not get into a transaction: {proc.communicate()}")
        kill(proc)
        assert b"uncommitted-0" in uncommitted_values(kafka.bootstrap, p0)

        log = KafkaLog(kafka.bootstrap, timeout=20.0)
        assert log.last_checkpoint(source) == {"n": 0}
        assert [r.value for r in read_all(log, p0)] == [b"committed-0"]
        assert read_all(log, p1) == []

        # the source starts again: its new producer fences the dead one and aborts its
        # transaction, so readers get past it at once, and never see what it wrote
        log.append_checkpointed(source, {p0: [Record(b"k", b"committed-1")]}, {"n": 1})
        assert log.last_checkpoint(source) == {"n": 1}
        assert [r.value for r in read_all(log, p0)] == [b"committed-0", b"committed-1"]
        assert read_all(log, p1) == []
    finally:
        log.close()


@pytest.mark.slow
def test_writer_killed_at_random_moments_loses_and_duplicates_nothing(
    kafka: KafkaCluster, writer_log: KafkaLog
) -> None:
    topic, source = unique("txn"), unique("src")
    rng = random.Random(8)
    writer_log.create_topic(topic, TopicConfig(partitions=2))
    writer_log.close()
    acked = -1
    for _ in range(4):
        proc = start_writer(kafka.bootstrap, topic, source, "loop")
        assert proc.stdout is not None
        if proc.stdout.readline() != "READY\n":
            proc.kill()
            raise AssertionError(f"writer did not start: {proc.communicate()}")
        try:
            proc.wait(timeout=rng.uniform(0.3, 1.5))
            raise AssertionError(f"writer exited by itself: {proc.communicate()}")
        except subprocess.TimeoutExpired:
            out = kill(proc)
        acks = [int(line.split()[1]) for line in out.splitlines() if line.startswith("C ")]
        acked = max([acked, *acks])

    log = KafkaLog(kafka.bootstrap, timeout=20.0)
    try:
        checkpoint = log.last_checkpoint(source)
        assert checkpoint is not None
        n = int(checkpoint["n"])
        assert n >= acked, "an acknowledged checkpoint was lost"
        expected = [b"%d-%d" % (b, i) for b in range(n + 1) for i in range(20)]
        for tp in (TopicPartition(topic, 0), TopicPartition(topic, 1)):
            assert [r.value for r in read_all(log, tp)] == expected
    finally:
        log.close()
