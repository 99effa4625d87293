"""The log contract (log/api.py), run against both backends: embedded files and Kafka.

Everything here must hold on either backend, so offsets are taken from what the log returned
rather than assumed dense: on Kafka every transaction leaves a commit marker that takes an
offset and is never read.
"""

from __future__ import annotations

import threading
import time

import pytest

from hub.errors import (
    LogClosedError,
    OffsetOutOfRangeError,
    UnknownTopicError,
    UsageError,
)
from log.api import Log, LogRecord, OffsetSpec, Record, TopicConfig, TopicPartition
from tests.integration.kafka.conftest import LogFactory, unique

pytestmark = pytest.mark.integration


def read_all(log: Log, tp: TopicPartition) -> list[LogRecord]:
    out: list[LogRecord] = []
    offset = log.start_offset(tp)
    end = log.end_offset(tp)
    while offset < end:
        # no timeout: records below the end are there (a backend waits for them), and
        # between the last record and the end may lie only Kafka's transaction markers
        got = log.read(tp, offset)
        if not got:
            break
        out += got
        offset = got[-1].offset + 1
    return out


def values(records: list[LogRecord]) -> list[bytes | None]:
    return [r.value for r in records]


def recs(*vals: bytes, ts: int = 0) -> list[Record]:
    return [Record(b"k-" + v, v, ts) for v in vals]


# -- topics ---------------------------------------------------------------------------------


def test_created_topic_is_listed_with_its_config(log: Log) -> None:
    name = unique("cfg")
    config = TopicConfig(
        partitions=3, cleanup="compact", retention_ms=None, retention_bytes=64 * 1024 * 1024
    )
    log.create_topic(name, config)
    assert name in log.list_topics()
    got = log.topic_config(name)
    assert got.partitions == 3
    assert got.cleanup == "compact"
    assert got.retention_ms is None
    assert got.retention_bytes == 64 * 1024 * 1024


def test_internal_topics_are_not_listed(log: Log, topic: str) -> None:
    log.append_checkpointed(unique("src"), {TopicPartition(topic, 0): recs(b"a")}, {"p": 1})
    assert all(not t.startswith("_") for t in log.list_topics())


def test_creating_an_existing_topic_again_is_a_no_op(log: Log, topic: str) -> None:
    log.append(TopicPartition(topic, 0), recs(b"a"))
    log.create_topic(topic, TopicConfig(partitions=2))
    assert values(read_all(log, TopicPartition(topic, 0))) == [b"a"]


def test_changing_the_partition_count_is_refused(log: Log, topic: str) -> None:
    with pytest.raises(UsageError, match="partition"):
        log.create_topic(topic, TopicConfig(partitions=5))


def test_describe_topic_gives_offsets_per_partition(log: Log, topic: str) -> None:
    log.append(TopicPartition(topic, 1), recs(b"a", b"b", b"c"))
    info = log.describe_topic(topic)
    assert [(p.partition, p.start_offset, p.end_offset) for p in info.partitions] == [
        (0, 0, 0),
        (1, 0, 3),
    ]


def test_deleted_topic_is_gone(log: Log, topic: str) -> None:
    log.append(TopicPartition(topic, 0), recs(b"a"))
    log.delete_topic(topic)
    assert topic not in log.list_topics()
    with pytest.raises(UnknownTopicError):
        log.read(TopicPartition(topic, 0), 0)


def test_unknown_topic_and_partition_are_named_errors(log: Log, topic: str) -> None:
    missing = TopicPartition(unique("missing"), 0)
    with pytest.raises(UnknownTopicError):
        log.read(missing, 0)
    with pytest.raises(UnknownTopicError):
        log.append(missing, recs(b"a"))
    with pytest.raises(UnknownTopicError):
        log.describe_topic(missing.topic)
    with pytest.raises(UnknownTopicError):
        log.end_offset(TopicPartition(topic, 7))


def test_read_only_log_reads_but_refuses_writes(
    log_factory: LogFactory, log: Log, topic: str
) -> None:
    p0 = TopicPartition(topic, 0)
    source = unique("src")
    log.append_checkpointed(source, {p0: recs(b"a")}, {"n": 1})
    inspector = log_factory.open(read_only=True)
    assert values(read_all(inspector, p0)) == [b"a"]
    assert inspector.last_checkpoint(source) == {"n": 1}
    with pytest.raises(UsageError, match="read-only"):
        inspector.append(p0, recs(b"b"))
    with pytest.raises(UsageError, match="read-only"):
        inspector.create_topic(unique("new"), TopicConfig())


# -- append and read ------------------------------------------------------------------------


def test_append_returns_the_first_offset_and_read_returns_records_in_order(
    log: Log, topic: str
) -> None:
    tp = TopicPartition(topic, 0)
    assert log.append(tp, recs(b"a", b"b")) == 0
    second = log.append(tp, [Record(b"k", b"c", 1_700_000_000_000, (("h", b"1"),))])
    assert second == 2
    got = log.read(tp, 0, timeout=5.0)
    got += log.read(tp, got[-1].offset + 1, timeout=5.0) if len(got) < 3 else []
    assert [(r.offset, r.key, r.value) for r in got] == [
        (0, b"k-a", b"a"),
        (1, b"k-b", b"b"),
        (2, b"k", b"c"),
    ]
    assert got[2].timestamp_ms == 1_700_000_000_000
    assert got[2].headers == (("h", b"1"),)
    assert got[0].timestamp_ms > 1_700_000_000_000  # 0 means "now"
    assert log.end_offset(tp) == 3


def test_null_keys_and_values_survive(log: Log, topic: str) -> None:
    tp = TopicPartition(topic, 0)
    log.append(tp, [Record(None, b"v"), Record(b"k", None)])
    got = read_all(log, tp)
    assert [(r.key, r.value) for r in got] == [(None, b"v"), (b"k", None)]


def test_read_respects_max_records_and_returns_a_record_over_max_bytes(
    log: Log, topic: str
) -> None:
    tp = TopicPartition(topic, 0)
    log.append(tp, recs(*[b"x" * 100 for _ in range(5)]))
    assert len(log.read(tp, 0, max_records=2, timeout=5.0)) == 2
    # the embedded log cuts at batch boundaries, Kafka at records: both give at least one
    assert log.read(tp, 0, max_bytes=10, timeout=5.0)[0].offset == 0
    assert [r.offset for r in log.read(tp, 3, timeout=5.0)] == [3, 4]


def test_read_block_holds_the_records_read_returns_as_columns(log: Log, topic: str) -> None:
    tp = TopicPartition(topic, 0)
    log.append(tp, [Record(None, b"v"), Record(b"k", None), Record(b"", b"")])
    log.append_checkpointed(unique("src"), {tp: recs(b"a", b"bb", ts=1_000)}, {"p": 1})
    log.append(tp, recs(b"c"))
    expected = [r._replace(headers=()) for r in read_all(log, tp)]
    got: list[LogRecord] = []
    offset = log.start_offset(tp)
    while offset < log.end_offset(tp):
        block = log.read_block(tp, offset, max_records=2)
        if not len(block):
            break  # only Kafka's transaction markers are left
        assert len(block) <= 2 and block.tp == tp
        got += block.records()
        offset = block.offsets[-1] + 1
    assert got == expected and len(got) == 6


def test_read_at_the_end_returns_nothing_and_past_it_raises(log: Log, topic: str) -> None:
    tp = TopicPartition(topic, 0)
    log.append(tp, recs(b"a", b"b"))
    assert log.read(tp, 2) == []
    with pytest.raises(OffsetOutOfRangeError) as e:
        log.read(tp, 50)
    assert e.value.end == 2


def test_records_are_readable_as_soon_as_append_returns(log: Log, topic: str) -> None:
    tp = TopicPartition(topic, 0)
    for i in range(5):
        base = log.append(tp, recs(b"%d" % i))
        assert values(log.read(tp, base)) == [b"%d" % i]


def test_waiting_read_is_woken_by_an_append(log: Log, topic: str) -> None:
    tp = TopicPartition(topic, 0)
    log.read(tp, 0)  # the reader is positioned at the end
    result: list[list[LogRecord]] = []
    reader = threading.Thread(target=lambda: result.append(log.read(tp, 0, timeout=20.0)))
    start = time.monotonic()
    reader.start()
    log.append(tp, recs(b"late"))
    reader.join(25.0)
    assert values(result[0]) == [b"late"]
    assert time.monotonic() - start < 10.0


def test_waiting_read_times_out_empty(log: Log, topic: str) -> None:
    start = time.monotonic()
    assert log.read(TopicPartition(topic, 0), 0, timeout=0.3) == []
    assert time.monotonic() - start >= 0.3


def test_fetch_waits_on_several_partitions_and_returns_the_one_written(
    log: Log, topic: str
) -> None:
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    result: list[list[LogRecord]] = []
    reader = threading.Thread(
        target=lambda: result.append(log.fetch({p0: 0, p1: 0}, timeout=20.0))
    )
    reader.start()
    log.append(p1, recs(b"on-1"))
    reader.join(25.0)
    assert [(r.partition, r.value) for r in result[0]] == [(1, b"on-1")]


def test_close_wakes_a_waiting_reader(log: Log, topic: str) -> None:
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            log.read(TopicPartition(topic, 0), 0, timeout=30.0)
        except BaseException as e:
            errors.append(e)

    reader = threading.Thread(target=wait)
    reader.start()
    time.sleep(0.5)  # let the reader block; closing before it waits would prove nothing
    start = time.monotonic()
    log.close()
    reader.join(10.0)
    assert not reader.is_alive()
    assert time.monotonic() - start < 5.0
    assert len(errors) == 1 and isinstance(errors[0], LogClosedError)


def test_offset_for_time_finds_the_first_record_at_or_after(log: Log, topic: str) -> None:
    tp = TopicPartition(topic, 0)
    log.append(tp, [Record(b"a", b"a", 1_000_000), Record(b"b", b"b", 2_000_000)])
    log.append(tp, [Record(b"c", b"c", 3_000_000)])
    assert log.offset_for_time(tp, 0) == 0
    assert log.offset_for_time(tp, 1_500_000) == 1
    assert log.offset_for_time(tp, 3_000_000) == 2
    assert log.offset_for_time(tp, 9_000_000) == log.end_offset(tp)


# -- checkpointed appends -------------------------------------------------------------------


def test_checkpointed_append_writes_records_and_checkpoint_together(
    log_factory: LogFactory, log: Log, topic: str
) -> None:
    source = unique("src")
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    assert log.last_checkpoint(source) is None
    bases = log.append_checkpointed(
        source, {p0: recs(b"a", b"b"), p1: recs(b"c")}, {"lsn": 10, "tx": [1, 2]}
    )
    assert bases == {p0: 0, p1: 0}
    assert values(log.read(p0, 0)) == [b"a", b"b"]
    assert values(log.read(p1, 0)) == [b"c"]
    assert log.last_checkpoint(source) == {"lsn": 10, "tx": [1, 2]}
    second = log.append_checkpointed(source, {p0: recs(b"d")}, {"lsn": 20})
    assert values(log.read(p0, second[p0])) == [b"d"]
    assert values(read_all(log, p0)) == [b"a", b"b", b"d"]
    assert log.last_checkpoint(source) == {"lsn": 20}

    log.close()
    reopened = log_factory.open()
    assert reopened.last_checkpoint(source) == {"lsn": 20}
    assert values(read_all(reopened, p0)) == [b"a", b"b", b"d"]


def test_heartbeat_moves_only_the_checkpoint(log: Log, topic: str) -> None:
    source = unique("src")
    p0 = TopicPartition(topic, 0)
    log.append_checkpointed(source, {p0: recs(b"a")}, {"lsn": 1})
    assert log.append_checkpointed(source, {}, {"lsn": 2}) == {}
    assert log.last_checkpoint(source) == {"lsn": 2}
    assert values(read_all(log, p0)) == [b"a"]


def test_checkpoints_of_sources_are_kept_apart(log: Log, topic: str) -> None:
    a, b = unique("src"), unique("src")
    p0 = TopicPartition(topic, 0)
    log.append_checkpointed(a, {p0: recs(b"a")}, {"n": "a1"})
    log.append_checkpointed(b, {p0: recs(b"b")}, {"n": "b1"})
    log.append_checkpointed(a, {}, {"n": "a2"})
    assert log.last_checkpoint(a) == {"n": "a2"}
    assert log.last_checkpoint(b) == {"n": "b1"}


def test_a_checkpoint_that_is_not_json_is_refused_before_writing(log: Log, topic: str) -> None:
    source = unique("src")
    p0 = TopicPartition(topic, 0)
    with pytest.raises(UsageError, match="JSON"):
        log.append_checkpointed(source, {p0: recs(b"a")}, {"when": object()})
    assert log.last_checkpoint(source) is None
    assert read_all(log, p0) == []


# -- group offsets --------------------------------------------------------------------------


def test_group_offsets_commit_merge_and_list(log: Log, topic: str) -> None:
    group = unique("sink")
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    log.append(p0, recs(b"a", b"b", b"c"))
    log.append(p1, recs(b"d"))
    assert log.committed_offsets(group) == {}
    log.commit_offsets(group, {p0: 2, p1: 1})
    log.commit_offsets(group, {p0: 3})
    assert log.committed_offsets(group) == {p0: 3, p1: 1}
    assert group in log.list_groups()


def test_group_offsets_survive_a_reopen(log_factory: LogFactory, log: Log, topic: str) -> None:
    group = unique("sink")
    p0 = TopicPartition(topic, 0)
    log.append(p0, recs(b"a"))
    log.commit_offsets(group, {p0: 1})
    log.close()
    assert log_factory.open().committed_offsets(group) == {p0: 1}


def test_reset_offsets_to_earliest_latest_offset_and_time(log: Log, topic: str) -> None:
    group = unique("sink")
    p0 = TopicPartition(topic, 0)
    log.append(p0, [Record(b"a", b"a", 1_000_000), Record(b"b", b"b", 2_000_000)])
    log.append(p0, [Record(b"c", b"c", 3_000_000)])
    assert log.reset_offsets(group, [p0], OffsetSpec("latest")) == {p0: 3}
    assert log.reset_offsets(group, [p0], OffsetSpec("earliest")) == {p0: 0}
    assert log.reset_offsets(group, [p0], OffsetSpec("offset", 99)) == {p0: 3}
    assert log.reset_offsets(group, [p0], OffsetSpec("timestamp", 2_000_000)) == {p0: 1}
    assert log.committed_offsets(group) == {p0: 1}


def test_committing_for_an_unknown_topic_is_refused(log: Log) -> None:
    with pytest.raises(UnknownTopicError):
        log.commit_offsets(unique("sink"), {TopicPartition(unique("missing"), 0): 1})


def test_caught_up_after_reading_everything(log: Log, topic: str) -> None:
    p0 = TopicPartition(topic, 0)
    log.append_checkpointed(unique("src"), {p0: recs(b"a", b"b")}, {"n": 1})
    assert not log.caught_up(p0, 0)
    last = read_all(log, p0)[-1]
    assert log.caught_up(p0, last.offset + 1)
