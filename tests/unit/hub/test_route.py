"""hub.source_worker.route: records grouped by topic-partition, in order, by murmur2(key)."""

from __future__ import annotations

from connectors.api import SourceRecord
from hub.source_worker import route
from log.api import Record, TopicPartition
from log.partitioner import partition_for


def test_records_keep_their_order_per_partition_across_interleaved_topics() -> None:
    parts = {"a": 1, "b": 3}
    recs = [SourceRecord("a" if i % 3 else "b", b"k%d" % (i % 7), b"v%d" % i, i)
            for i in range(60)]
    writes = route(recs, parts.__getitem__)
    expected: dict[TopicPartition, list[Record]] = {}
    for r in recs:
        tp = TopicPartition(r.topic, partition_for(r.key, parts[r.topic]))
        expected.setdefault(tp, []).append(Record(r.key, r.value, r.timestamp_ms))
    assert writes == expected
    assert all(type(r) is Record and r.headers == () for rs in writes.values() for r in rs)
    assert {tp.partition for tp in writes if tp.topic == "a"} == {0}
    assert len({tp.partition for tp in writes if tp.topic == "b"}) > 1


def test_partition_count_is_asked_once_per_topic() -> None:
    asked: list[str] = []

    def partitions(topic: str) -> int:
        asked.append(topic)
        return 1

    route([SourceRecord(t, None, b"", 0) for t in "aabba"], partitions)
    assert asked == ["a", "b"]
