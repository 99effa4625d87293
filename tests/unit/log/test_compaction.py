from __future__ import annotations

import threading

from log.api import LogRecord, Record, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

from .conftest import FakeClock, OpenLog

TP = TopicPartition("users", 0)


def latest_values(log: EmbeddedLog) -> dict[bytes | None, bytes | None]:
    out: dict[bytes | None, bytes | None] = {}
    offset = log.start_offset(TP)
    while offset < log.end_offset(TP):
        got = log.read(TP, offset)
        for r in got:
            out[r.key] = r.value
        offset = got[-1].offset + 1
    return out


def all_records(log: EmbeddedLog) -> list[LogRecord]:
    out: list[LogRecord] = []
    offset = log.start_offset(TP)
    while offset < log.end_offset(TP):
        got = log.read(TP, offset)
        out += got
        offset = got[-1].offset + 1
    return out


def test_compaction_keeps_the_latest_value_of_each_key(open_log: OpenLog, clock: FakeClock) -> None:
    log = open_log()
    log.create_topic("users", TopicConfig(cleanup="compact", segment_bytes=2000))
    for round_ in range(10):
        log.append(TP, [Record(b"u%d" % k, b"v%d-%d" % (k, round_)) for k in range(10)])
    expected = latest_values(log)
    before = len(all_records(log))
    assert log.run_compaction() > 0
    after = all_records(log)
    assert len(after) < before
    assert latest_values(log) == expected
    offsets = [r.offset for r in after]
    assert offsets == sorted(offsets)
    assert log.end_offset(TP) == 100
    log.close()
    again = open_log()
    assert latest_values(again) == expected
    assert [r.offset for r in all_records(again)] == offsets


def test_tombstones_are_dropped_only_after_delete_retention(
    open_log: OpenLog, clock: FakeClock
) -> None:
    log = open_log()
    config = TopicConfig(cleanup="compact", segment_bytes=500, delete_retention_ms=60_000)
    log.create_topic("users", config)
    log.append(TP, [Record(b"gone", b"x" * 100)])
    log.append(TP, [Record(b"gone", None)])
    for i in range(20):
        log.append(TP, [Record(b"filler%d" % i, b"y" * 100)])
    log.run_compaction()
    recs = all_records(log)
    assert [(r.key, r.value) for r in recs if r.key == b"gone"] == [(b"gone", None)]
    clock.advance(60_001)
    log.run_compaction()
    assert not [r for r in all_records(log) if r.key == b"gone"]


def test_a_reader_inside_a_gap_gets_the_next_record(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("users", TopicConfig(cleanup="compact", segment_bytes=500))
    for i in range(30):
        log.append(TP, [Record(b"same", b"v%d" % i + b"z" * 100)])
    log.run_compaction()
    got = log.read(TP, 0)
    assert got and got[0].value is not None and got[0].offset > 0


def test_appends_and_reads_go_on_while_compacting(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("users", TopicConfig(cleanup="compact", segment_bytes=1500))
    for i in range(200):
        log.append(TP, [Record(b"k%d" % (i % 7), b"v%d" % i + b"." * 50)])
    done = threading.Event()

    def writer() -> None:
        i = 200
        while not done.is_set():
            log.append(TP, [Record(b"k%d" % (i % 7), b"v%d" % i)])
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(3):
            log.run_compaction()
            offsets = [r.offset for r in all_records(log)]
            assert offsets == sorted(set(offsets))
    finally:
        done.set()
        t.join()
    values = latest_values(log)
    assert set(values) == {b"k%d" % i for i in range(7)}
