"""log.migrate: topics, checkpoints and group offsets move between backends, and every sink
goes on with exactly the records it had not read."""

from __future__ import annotations

import pytest

from hub.errors import UsageError
from log.api import Log, Record, TopicConfig, TopicPartition
from log.migrate import migrate
from tests.integration.kafka.conftest import LogFactory, unique
from tests.integration.kafka.test_log_contract import read_all

pytestmark = pytest.mark.integration


def fill(log: Log, topic: str, source: str, group: str) -> None:
    """Two partitions written by plain and checkpointed appends; a group half way through."""
    log.create_topic(topic, TopicConfig(partitions=2, retention_ms=None))
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    log.append(p0, [Record(b"a", b"1", 1_000_000, (("h", b"x"),)), Record(None, b"2", 1_000_001)])
    for n in range(3):
        log.append_checkpointed(
            source, {p0: [Record(b"k%d" % n, b"c%d" % n)], p1: [Record(b"j", None)]}, {"n": n}
        )
    # the group has read "1", "2" and "c0" of p0 (on Kafka a transaction marker follows c0)
    c0 = next(r for r in read_all(log, p0) if r.value == b"c0")
    log.commit_offsets(group, {p0: c0.offset + 1, p1: log.end_offset(p1)})


def contents(log: Log, tp: TopicPartition) -> list[tuple[object, ...]]:
    return [(r.key, r.value, r.headers) for r in read_all(log, tp)]


@pytest.mark.parametrize("direction", ["embedded->kafka", "kafka->embedded"])
def test_migrate_copies_records_checkpoints_and_translates_group_offsets(
    direction: str, embedded_log: LogFactory, kafka_log: LogFactory
) -> None:
    factories = {"embedded": embedded_log, "kafka": kafka_log}
    a, b = direction.split("->")
    src, dst = factories[a].open(), factories[b].open()
    topic, source, group = unique("mig"), unique("src"), unique("sink")
    fill(src, topic, source, group)
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    report = migrate(src, dst, topics=[topic], groups=[group], sources=[source])

    assert report.records == {topic: 8}
    assert contents(dst, p0) == contents(src, p0)
    assert contents(dst, p1) == contents(src, p1)
    assert [r.timestamp_ms for r in read_all(dst, p0)][:2] == [1_000_000, 1_000_001]
    assert dst.last_checkpoint(source) == {"n": 2}
    assert dst.topic_config(topic).retention_ms is None
    # the group goes on with "c1" in p0 and nothing in p1, whatever the offsets are now
    offsets = dst.committed_offsets(group)
    assert [r.value for r in dst.read(p0, offsets[p0])][:1] == [b"c1"]
    assert offsets[p1] == dst.end_offset(p1)


def test_migrate_refuses_a_destination_with_records(
    embedded_log: LogFactory, kafka_log: LogFactory
) -> None:
    src, dst = embedded_log.open(), kafka_log.open()
    topic = unique("mig")
    for log in (src, dst):
        log.create_topic(topic, TopicConfig(partitions=1))
        log.append(TopicPartition(topic, 0), [Record(b"k", b"v")])
    with pytest.raises(UsageError, match="already has records"):
        migrate(src, dst, topics=[topic], groups=[])
