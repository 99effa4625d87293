"""hub.source_worker.route: records grouped by topic-partition, in order, by murmur2(key)."""

from __future__ import annotations

import struct

from connectors.api import SourceColumns, SourceRecord
from hub.source_worker import route
from log.api import Record, TopicPartition
from log.batch import RecordColumns
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


def test_laid_out_records_of_a_single_partition_topic_pass_through_whole() -> None:
    keys, values = [b'{"id":1}', b'{"id":2}', b'{"id":3}'], [b"x", b"yy", b"zzz"]
    columns = RecordColumns(
        struct.pack("<3i", *map(len, keys)), b"".join(keys),
        struct.pack("<3i", *map(len, values)), b"".join(values), 9,
    )  # fmt: skip
    laid_out = SourceColumns("t", columns)
    assert route(laid_out, lambda _: 1) == {TopicPartition("t", 0): columns}
    # several partitions: partitioned by key like any records
    as_records = [SourceRecord("t", k, v, 9) for k, v in zip(keys, values, strict=True)]
    assert list(laid_out) == as_records
    by_key = route(laid_out, lambda _: 4)
    assert by_key == route(as_records, lambda _: 4)
    assert all(type(rs) is list for rs in by_key.values())
