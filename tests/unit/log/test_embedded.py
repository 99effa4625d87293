"""Behaviour of EmbeddedLog through the Log interface."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from hub.errors import LogClosedError, OffsetOutOfRangeError, UnknownTopicError, UsageError
from log.api import Record, TopicConfig, TopicPartition

from .conftest import FakeClock, OpenLog, records

TP = TopicPartition("shop.public.orders", 0)


def run_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=target)
    t.start()
    return t, out


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    cond = threading.Condition()
    with cond:
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached in time"
            cond.wait(0.005)


def test_appends_get_dense_offsets_from_zero(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig())
    assert log.append(TP, records(3)) == 0
    assert log.append(TP, records(2, start=3)) == 3
    got = log.read(TP, 0)
    assert [r.offset for r in got] == [0, 1, 2, 3, 4]
    assert [r.key for r in got] == [b"k0", b"k1", b"k2", b"k3", b"k4"]
    assert (log.start_offset(TP), log.end_offset(TP)) == (0, 5)


def test_read_respects_max_records_and_max_bytes_but_returns_at_least_one(
    open_log: OpenLog,
) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig())
    for i in range(5):
        log.append(TP, records(10, start=i * 10, size=100))
    assert [r.offset for r in log.read(TP, 3, max_records=4)] == [3, 4, 5, 6]
    assert len(log.read(TP, 0, max_bytes=1)) >= 1
    assert log.read(TP, 45, max_bytes=1)[0].offset == 45


def test_reading_at_the_end_returns_nothing_and_past_it_is_an_error(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig())
    log.append(TP, records(3))
    assert log.read(TP, 3) == []
    with pytest.raises(OffsetOutOfRangeError, match="out of range") as e:
        log.read(TP, 4)
    assert (e.value.start, e.value.end) == (0, 3)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(TP, -1)


def test_unknown_topic_and_partition_are_errors(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig(partitions=2))
    with pytest.raises(UnknownTopicError, match="no topic 'nope'"):
        log.append(TopicPartition("nope", 0), records(1))
    with pytest.raises(UnknownTopicError, match=r"partitions 0\.\.1"):
        log.read(TopicPartition(TP.topic, 2), 0)
    with pytest.raises(UnknownTopicError):
        log.topic_config("nope")


def test_create_topic_is_idempotent_but_refuses_a_new_partition_count(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig(partitions=3))
    log.create_topic("a", TopicConfig(partitions=3))
    with pytest.raises(UsageError, match="3 partitions, not 4"):
        log.create_topic("a", TopicConfig(partitions=4))
    with pytest.raises(UsageError, match="invalid topic name"):
        log.create_topic("no/slash", TopicConfig())
    with pytest.raises(UsageError, match="partitions must be >= 1"):
        log.create_topic("b", TopicConfig(partitions=0))
    assert log.list_topics() == ["a"]


def test_topics_and_data_survive_reopening(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig(partitions=2, cleanup="compact"))
    log.append(TopicPartition("a", 1), records(4))
    log.close()
    again = open_log()
    assert again.list_topics() == ["a"]
    assert again.topic_config("a").cleanup == "compact"
    assert [r.key for r in again.read(TopicPartition("a", 1), 0)] == [b"k0", b"k1", b"k2", b"k3"]
    info = again.describe_topic("a")
    assert [(p.partition, p.end_offset) for p in info.partitions] == [(0, 0), (1, 4)]
    assert info.size_bytes > 0


def test_delete_topic_removes_it_and_its_files(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig())
    log.append(TopicPartition("a", 0), records(2))
    log.delete_topic("a")
    assert log.list_topics() == []
    assert not (log.root / "topics" / "a").exists()
    log.create_topic("a", TopicConfig())
    assert log.end_offset(TopicPartition("a", 0)) == 0


def test_segments_roll_by_size(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig(segment_bytes=2000))
    for i in range(20):
        log.append(TP, records(5, start=i * 5, size=50))
    part_dir = log.root / "topics" / TP.topic / "0"
    segments = list(part_dir.glob("*.log"))
    assert len(segments) >= 3
    assert all(s.stat().st_size <= 2000 for s in segments)
    assert [r.offset for r in log.read(TP, 0, max_records=1000)][:3] == [0, 1, 2]
    offsets: list[int] = []
    while len(offsets) < 100:
        offsets += [r.offset for r in log.read(TP, len(offsets))]
    assert offsets == list(range(100))


def test_segments_roll_by_age(open_log: OpenLog, clock: FakeClock) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig(segment_ms=1000))
    log.append(TP, records(1))
    clock.advance(999)
    log.append(TP, records(1))
    clock.advance(2)
    log.append(TP, records(1))
    assert len(list((log.root / "topics" / TP.topic / "0").glob("*.log"))) == 2


def test_offset_for_time_finds_the_first_record_at_or_after(
    open_log: OpenLog, clock: FakeClock
) -> None:
    log = open_log(index_interval_bytes=64)
    log.create_topic(TP.topic, TopicConfig(segment_bytes=3000))
    for i in range(50):
        log.append(TP, [Record(b"k", b"v" * 30, 1000 + i * 10), Record(b"k", b"v", 1005 + i * 10)])
    assert log.offset_for_time(TP, 0) == 0
    assert log.offset_for_time(TP, 1000) == 0
    assert log.offset_for_time(TP, 1001) == 1
    assert log.offset_for_time(TP, 1250) == 50
    assert log.offset_for_time(TP, 1251) == 51
    assert log.offset_for_time(TP, 10**13) == 100


def test_a_waiting_reader_wakes_on_append(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig())
    t, out = run_in_thread(lambda: log.read(TP, 0, timeout=10))
    wait_until(lambda: log._partition(TP).waiters._waiters)
    start = time.monotonic()
    log.append(TP, records(1))
    t.join()
    assert time.monotonic() - start < 1
    assert [r.offset for r in out["value"]] == [0]


def test_a_read_with_timeout_returns_empty_when_nothing_comes(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig())
    start = time.monotonic()
    assert log.read(TP, 0, timeout=0.05) == []
    assert time.monotonic() - start >= 0.05


def test_fetch_wakes_on_any_of_its_partitions(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig(partitions=3))
    positions = {TopicPartition("a", i): 0 for i in range(3)}
    t, out = run_in_thread(lambda: log.fetch(positions, timeout=10))
    wait_until(lambda: log._partition(TopicPartition("a", 2)).waiters._waiters)
    log.append(TopicPartition("a", 2), records(2))
    t.join()
    assert [(r.partition, r.offset) for r in out["value"]] == [(2, 0), (2, 1)]


def test_close_wakes_waiting_readers_with_log_closed_error(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig())
    t, out = run_in_thread(lambda: log.read(TP, 0, timeout=10))
    wait_until(lambda: log._partition(TP).waiters._waiters)
    log.close()
    t.join()
    assert isinstance(out["error"], LogClosedError)
    with pytest.raises(LogClosedError):
        log.append(TP, records(1))


def test_deleting_a_topic_wakes_its_readers_with_unknown_topic(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig())
    t, out = run_in_thread(lambda: log.read(TP, 0, timeout=10))
    wait_until(lambda: log._partition(TP).waiters._waiters)
    log.delete_topic(TP.topic)
    t.join()
    assert isinstance(out["error"], UnknownTopicError)


def test_one_writer_and_many_readers_see_every_record_in_order(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig(segment_bytes=20_000))
    total = 3000

    def reader() -> list[int]:
        seen: list[int] = []
        while len(seen) < total:
            seen += [r.offset for r in log.read(TP, len(seen), max_records=77, timeout=5)]
        return seen

    threads = [run_in_thread(reader) for _ in range(4)]
    for i in range(0, total, 30):
        log.append(TP, records(30, start=i))
    for t, out in threads:
        t.join()
        assert out["value"] == list(range(total))


def test_empty_append_writes_nothing(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig())
    assert log.append(TP, []) == 0
    assert log.end_offset(TP) == 0


def test_writers_on_many_partitions_at_once_keep_each_one_dense_and_in_order(
    open_log: OpenLog,
) -> None:
    log = open_log()
    log.create_topic("many", TopicConfig(partitions=6, segment_bytes=8_000))
    parts = [TopicPartition("many", p) for p in range(6)]
    per_partition = 600

    def writer(tp: TopicPartition) -> None:
        for i in range(0, per_partition, 20):
            recs = [Record(b"k", b"%d:%d" % (tp.partition, n)) for n in range(i, i + 20)]
            assert log.append(tp, recs) == i

    def checkpointer() -> None:  # source checkpoints are written meanwhile
        for n in range(30):
            log.append_checkpointed("src", {parts[0]: [], parts[5]: []}, {"n": n})

    def follower() -> dict[int, list[bytes | None]]:
        positions = dict.fromkeys(parts, 0)
        seen: dict[int, list[bytes | None]] = {tp.partition: [] for tp in parts}
        while sum(positions.values()) < per_partition * 6:
            for r in log.fetch(positions, timeout=5):
                seen[r.partition].append(r.value)
                positions[TopicPartition("many", r.partition)] = r.offset + 1
        return seen

    readers = [run_in_thread(follower) for _ in range(2)]
    writers = [run_in_thread(lambda tp=tp: writer(tp)) for tp in parts]
    writers.append(run_in_thread(checkpointer))
    for t, out in writers:
        t.join()
        assert "error" not in out, out.get("error")
    expected = {tp.partition: [b"%d:%d" % (tp.partition, n) for n in range(per_partition)]
                for tp in parts}
    for t, out in readers:
        t.join()
        assert out.get("value") == expected
    assert [log.end_offset(tp) for tp in parts] == [per_partition] * 6
    assert log.last_checkpoint("src") == {"n": 29}
