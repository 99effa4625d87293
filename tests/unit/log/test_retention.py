from __future__ import annotations

import pytest

from hub.errors import OffsetOutOfRangeError
from log.api import Record, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

from .conftest import FakeClock, OpenLog

TP = TopicPartition("t", 0)


def fill(log: EmbeddedLog, n_batches: int, ts: int) -> None:
    for _ in range(n_batches):
        log.append(TP, [Record(b"k", b"v" * 200, ts)] * 5)


def test_segments_older_than_retention_ms_are_deleted(open_log: OpenLog, clock: FakeClock) -> None:
    log = open_log()
    log.create_topic("t", TopicConfig(segment_bytes=3000, retention_ms=60_000))
    old = clock.ms - 120_000
    fill(log, 10, old)
    fill(log, 10, clock.ms)
    boundary = 50  # the first record with the new timestamp
    deleted = log.run_retention()
    assert deleted > 0
    start = log.start_offset(TP)
    assert 0 < start <= boundary
    with pytest.raises(OffsetOutOfRangeError):
        log.read(TP, 0)
    assert log.read(TP, start)[0].offset == start
    assert log.run_retention() == 0


def test_the_active_segment_is_never_deleted(open_log: OpenLog, clock: FakeClock) -> None:
    log = open_log()
    log.create_topic("t", TopicConfig(retention_ms=1))
    fill(log, 3, clock.ms - 10_000)
    assert log.run_retention() == 0
    assert log.end_offset(TP) == 15


def test_oldest_segments_go_when_the_partition_is_over_retention_bytes(
    open_log: OpenLog, clock: FakeClock
) -> None:
    log = open_log()
    log.create_topic("t", TopicConfig(segment_bytes=3000, retention_bytes=10_000))
    fill(log, 40, clock.ms)
    before = log.describe_topic("t").partitions[0].size_bytes
    assert before > 10_000
    log.run_retention()
    after = log.describe_topic("t").partitions[0]
    assert 10_000 <= after.size_bytes < 10_000 + 3000
    assert after.start_offset > 0 and after.end_offset == 200


def test_retention_survives_reopen(open_log: OpenLog, clock: FakeClock) -> None:
    log = open_log()
    log.create_topic("t", TopicConfig(segment_bytes=3000, retention_bytes=5000))
    fill(log, 20, clock.ms)
    log.run_retention()
    start = log.start_offset(TP)
    log.close()
    again = open_log()
    assert again.start_offset(TP) == start
    assert again.read(TP, start)[0].offset == start


def test_compacted_topics_are_not_deleted_by_retention(open_log: OpenLog, clock: FakeClock) -> None:
    log = open_log()
    log.create_topic("t", TopicConfig(cleanup="compact", segment_bytes=3000, retention_ms=1))
    fill(log, 10, clock.ms - 10_000)
    assert log.run_retention() == 0
