"""Log.read_block: the records of a read as columns, the same records read() returns."""

from __future__ import annotations

import pytest

from hub.errors import OffsetOutOfRangeError
from log.api import Log, LogRecord, Record, RecordBlock, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

from .conftest import FakeClock, OpenLog

TP = TopicPartition("t", 0)


def without_headers(records: list[LogRecord]) -> list[LogRecord]:
    return [r._replace(headers=()) for r in records]


def mixed_log(log: EmbeddedLog, clock: FakeClock) -> None:
    """Batches of every kind: null keys and values, empty ones, timestamps that differ within a
    batch, headers, and a self-committing checkpointed batch (a checkpoint block)."""
    log.create_topic(TP.topic, TopicConfig())
    log.append(TP, [Record(b"k%d" % i, b"v" * i) for i in range(7)])
    log.append(TP, [Record(None, b"no key"), Record(b"tomb", None), Record(b"", b""),
                    Record(None, None)])
    clock.advance(5)
    log.append(TP, [Record(b"a", b"1", 1_000), Record(b"b", b"22", 2_000, (("h", b"x"),)),
                    Record(b"c", b"333", 0)])
    log.append_checkpointed("src", {TP: [Record(b"cp%d" % i, b"w%d" % i) for i in range(5)]},
                            {"position": 1})
    log.append(TP, [Record(b"tail", b"end")])


def both_reads(log: Log, offset: int, **limits: int) -> list[tuple[list[LogRecord], RecordBlock]]:
    expected = without_headers(log.read(TP, offset, **limits))
    return [(expected, log.read_block(TP, offset, **limits)),  # the embedded log's own
            (expected, Log.read_block(log, TP, offset, **limits))]  # the default, via read()


def test_read_block_holds_what_read_returns_from_every_offset_and_limit(
    open_log: OpenLog, clock: FakeClock
) -> None:
    log = open_log()
    mixed_log(log, clock)
    end = log.end_offset(TP)
    assert end == 20
    for offset in range(end + 1):
        for limits in ({}, {"max_records": 1}, {"max_records": 3}, {"max_bytes": 1}):
            for expected, block in both_reads(log, offset, **limits):
                assert block.tp == TP
                assert len(block) == len(expected)
                assert block.records() == expected, (offset, limits)
                assert list(block.offsets) == [r.offset for r in expected]


def test_the_columns_are_the_stored_bytes_lengths_and_nulls(
    open_log: OpenLog, clock: FakeClock
) -> None:
    log = open_log()
    mixed_log(log, clock)
    block = log.read_block(TP, 6, max_records=5)
    assert list(block.offsets) == [6, 7, 8, 9, 10]
    assert block.key_lengths == b"".join(n.to_bytes(4, "little", signed=True)
                                         for n in (2, -1, 4, 0, -1))
    assert block.keys == b"k6" + b"tomb"
    assert block.value_lengths == b"".join(n.to_bytes(4, "little", signed=True)
                                           for n in (6, 6, -1, 0, -1))
    assert block.values == b"vvvvvv" + b"no key"
    times = log.read_block(TP, 11, max_records=3).timestamps
    assert list(times) == [1_000, 2_000, clock.ms]


def test_compacted_offsets_with_gaps(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig(cleanup="compact", segment_bytes=600))
    for round_ in range(6):
        log.append(TP, [Record(b"u%d" % k, b"v%d-%d" % (k, round_)) for k in range(8)])
    assert log.run_compaction() > 0
    offset = log.start_offset(TP)
    seen: list[int] = []
    while offset < log.end_offset(TP):
        for expected, block in both_reads(log, offset, max_records=5):
            assert block.records() == expected
        got = log.read_block(TP, offset, max_records=5)
        seen += got.offsets
        offset = got.offsets[-1] + 1
    assert len(seen) < 48  # the reads crossed the compaction's gaps
    # from inside a gap: the next record after it, as read() does
    gap = next(o for o in range(log.start_offset(TP), seen[-1]) if o not in seen)
    assert log.read_block(TP, gap).offsets[0] == log.read(TP, gap)[0].offset


def test_at_the_end_empty_and_past_it_an_error(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic(TP.topic, TopicConfig())
    log.append(TP, [Record(b"k", b"v")])
    block = log.read_block(TP, 1)
    assert len(block) == 0 and block.records() == [] and block.keys == b""
    with pytest.raises(OffsetOutOfRangeError):
        log.read_block(TP, 2)
    with pytest.raises(OffsetOutOfRangeError):
        Log.read_block(log, TP, 2)


def test_a_block_of_records_round_trips() -> None:
    records = [LogRecord("t", 0, 3, 10, b"k", None), LogRecord("t", 0, 5, 11, None, b"v"),
               LogRecord("t", 0, 6, 12, b"", b"")]
    assert RecordBlock.of(TP, records).records() == records


def test_slices_of_a_block() -> None:
    records = [LogRecord("t", 0, i, 10 + i, None if i % 3 == 0 else b"k%d" % i,
                         None if i % 4 == 1 else b"v" * i) for i in range(9)]
    block = RecordBlock.of(TP, records)
    for start in range(-1, 11):
        for stop in range(-1, 11):
            assert block.slice(start, stop).records() == records[max(start, 0):max(stop, 0)]
