"""Damaged files: flipped bytes and cut-off files in segments and indexes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.errors import CorruptLogError
from log.api import Record, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

from .helpers import read_all, segment_files

TP = TopicPartition("t", 0)


def build(path: Path, batches: int = 30) -> EmbeddedLog:
    log = EmbeddedLog(path, background_jobs=False, index_interval_bytes=256)
    log.create_topic("t", TopicConfig(segment_bytes=4000))
    for i in range(batches):
        log.append(TP, [Record(b"k%d" % j, b"v%d" % (i * 5 + j) * 20, 1000 + i) for j in range(5)])
    return log


def reopen(path: Path) -> EmbeddedLog:
    return EmbeddedLog(path, background_jobs=False, index_interval_bytes=256)


def flip(path: Path, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        b = f.read(1)
        f.seek(position)
        f.write(bytes([b[0] ^ 0x55]))


def test_a_flipped_byte_in_a_closed_segment_is_reported_with_topic_partition_offset(
    tmp_path: Path,
) -> None:
    build(tmp_path).close()
    second = segment_files(tmp_path, "t", 0)[1]
    base = int(second.name.split(".")[0])
    flip(second, os.path.getsize(second) // 2)
    log = reopen(tmp_path)
    try:
        assert log.read(TP, 0)[0].offset == 0
        with pytest.raises(CorruptLogError) as e:
            read_all(log, TP)
        assert (e.value.topic, e.value.partition) == ("t", 0)
        assert e.value.offset is not None and e.value.offset >= base
        assert "t[0]" in str(e.value) and str(e.value.offset) in str(e.value)
    finally:
        log.close()


@pytest.mark.parametrize("cut", ["at_batch", "mid_batch"])
def test_a_closed_segment_cut_short_is_reported_not_skipped(tmp_path: Path, cut: str) -> None:
    log = build(tmp_path)
    first = segment_files(tmp_path, "t", 0)[0]
    p = log._partition(TP)
    seg = p.segments[0]
    last = seg.last_batch
    assert last is not None
    log.close()
    size = last.position if cut == "at_batch" else last.position + 30
    os.truncate(first, size)
    log = reopen(tmp_path)
    try:
        with pytest.raises(CorruptLogError) as e:
            read_all(log, TP)
        assert e.value.offset == last.base_offset
    finally:
        log.close()


def test_a_flipped_byte_in_the_last_batch_is_cut_off_on_open(tmp_path: Path) -> None:
    log = build(tmp_path)
    end = log.end_offset(TP)
    log.close()
    active = segment_files(tmp_path, "t", 0)[-1]
    flip(active, os.path.getsize(active) - 3)
    log = reopen(tmp_path)
    try:
        assert log.end_offset(TP) == end - 5
        assert [r.offset for r in read_all(log, TP)] == list(range(end - 5))
        assert log.append(TP, [Record(b"k", b"new")]) == end - 5
    finally:
        log.close()


@pytest.mark.parametrize("keep", [0, 5, 59, 61])
def test_a_torn_tail_of_the_active_segment_is_cut_off(tmp_path: Path, keep: int) -> None:
    log = build(tmp_path)
    end = log.end_offset(TP)
    last = log._partition(TP).active.last_batch
    assert last is not None
    log.close()
    active = segment_files(tmp_path, "t", 0)[-1]
    os.truncate(active, last.position + keep)
    log = reopen(tmp_path)
    try:
        assert log.end_offset(TP) == end - 5
        assert os.path.getsize(active) == last.position
    finally:
        log.close()


@pytest.mark.parametrize("damage", ["delete", "cut", "garbage", "shuffle", "empty"])
@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_damaged_indexes_are_rebuilt(tmp_path: Path, damage: str, suffix: str) -> None:
    log = build(tmp_path)
    expected = [(r.offset, r.value) for r in read_all(log, TP)]
    times = {ts: log.offset_for_time(TP, ts) for ts in (999, 1000, 1007, 1015, 1029, 1030)}
    log.close()
    for index in segment_files(tmp_path, "t", 0, suffix):
        data = index.read_bytes()
        if damage == "delete":
            index.unlink()
        elif damage == "cut":
            index.write_bytes(data[:-3])
        elif damage == "garbage":
            index.write_bytes(data[:8] + os.urandom(max(len(data) - 8, 0)))
        elif damage == "shuffle" and len(data) > 24:
            w = 8 if suffix == ".index" else 12
            index.write_bytes(
                data[:8] + data[8 + w : 8 + 2 * w] + data[8 : 8 + w] + data[8 + 2 * w :]
            )
        elif damage == "empty":
            index.write_bytes(b"")
    log = reopen(tmp_path)
    try:
        assert [(r.offset, r.value) for r in read_all(log, TP)] == expected
        for offset in range(0, len(expected), 7):
            assert log.read(TP, offset)[0].offset == offset
        assert {ts: log.offset_for_time(TP, ts) for ts in times} == times
    finally:
        log.close()


def test_a_damaged_file_header_of_a_closed_segment_is_reported(tmp_path: Path) -> None:
    build(tmp_path).close()
    first = segment_files(tmp_path, "t", 0)[0]
    flip(first, 1)
    for index in segment_files(tmp_path, "t", 0, ".index"):
        index.unlink()
    log = reopen(tmp_path)
    try:
        with pytest.raises(CorruptLogError):
            log.read(TP, 0)
    finally:
        log.close()


def test_a_damaged_checkpoint_log_tail_loses_only_the_torn_commit(tmp_path: Path) -> None:
    """A commit of two partitions lives in the checkpoint log alone: torn, it is lost."""
    log = EmbeddedLog(tmp_path, background_jobs=False)
    log.create_topic("t", TopicConfig(partitions=2))
    t1 = TopicPartition("t", 1)
    log.append_checkpointed("src", {TP: [Record(b"a", b"1")], t1: [Record(b"c", b"1")]}, {"n": 1})
    log.append_checkpointed("src", {TP: [Record(b"b", b"2")], t1: [Record(b"d", b"2")]}, {"n": 2})
    log.close()
    cp = sorted((tmp_path / "internal" / "checkpoints").glob("*.log"))[-1]
    os.truncate(cp, os.path.getsize(cp) - 1)
    log = reopen(tmp_path)
    try:
        assert log.last_checkpoint("src") == {"n": 1}
        assert log.end_offset(TP) == 1 and log.end_offset(t1) == 1  # its records went with it
    finally:
        log.close()


def test_a_torn_copy_of_a_self_commit_is_taken_again_from_its_batch(tmp_path: Path) -> None:
    """A commit of one partition is in its batch; the checkpoint log only has a copy."""
    log = EmbeddedLog(tmp_path, background_jobs=False)
    log.create_topic("t", TopicConfig())
    log.append_checkpointed("src", {TP: [Record(b"a", b"1")]}, {"n": 1})
    log.append_checkpointed("src", {TP: [Record(b"b", b"2")]}, {"n": 2})
    log.close()
    cp = sorted((tmp_path / "internal" / "checkpoints").glob("*.log"))[-1]
    os.truncate(cp, os.path.getsize(cp) - 1)
    log = reopen(tmp_path)
    try:
        assert log.last_checkpoint("src") == {"n": 2}
        assert log.end_offset(TP) == 2
        log.append_checkpointed("src", {TP: [Record(b"c", b"3")]}, {"n": 3})  # next sequence
    finally:
        log.close()
    log = reopen(tmp_path)
    try:
        assert log.last_checkpoint("src") == {"n": 3}
        assert [r.value for r in read_all(log, TP)] == [b"1", b"2", b"3"]
    finally:
        log.close()
