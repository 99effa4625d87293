"""Checkpointed appends: records and the source's position, atomically."""

from __future__ import annotations

import os
import time

import orjson
import pytest

from hub.errors import UsageError
from log.api import TopicConfig, TopicPartition
from log.batch import ATTR_TRANSACTIONAL, encode
from log.checkpoints import COPY_INTERVAL_S, producer_id_for, self_commit_block
from log.embedded import EmbeddedLog

from .conftest import OpenLog, records

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def test_checkpointed_append_writes_every_partition_and_the_checkpoint(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig(partitions=2))
    log.create_topic("b", TopicConfig())
    log.append(A0, records(2))
    bases = log.append_checkpointed("pg", {A0: records(3), B0: records(1), A1: []}, {"lsn": 42})
    assert bases == {A0: 2, B0: 0}
    assert log.last_checkpoint("pg") == {"lsn": 42}
    assert log.end_offset(A0) == 5 and log.end_offset(B0) == 1 and log.end_offset(A1) == 0
    assert log.last_checkpoint("other") is None


def test_checkpoint_is_read_back_after_reopening(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig(partitions=2))
    for i in range(5):
        log.append_checkpointed("pg", {A0: records(1)}, {"lsn": i, "tx": [i, "x"]})
    log.append_checkpointed("mysql", {A1: records(1)}, {"gtid": "0-1-5"})
    log.close()
    again = open_log()
    assert again.last_checkpoint("pg") == {"lsn": 4, "tx": [4, "x"]}
    assert again.last_checkpoint("mysql") == {"gtid": "0-1-5"}
    assert again.end_offset(A0) == 5


def test_a_heartbeat_moves_only_the_checkpoint(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig())
    assert log.append_checkpointed("pg", {}, {"lsn": 7}) == {}
    assert log.last_checkpoint("pg") == {"lsn": 7}


def test_a_checkpoint_that_is_not_json_is_refused_before_anything_is_written(
    open_log: OpenLog,
) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig())
    with pytest.raises(UsageError, match="must be JSON"):
        log.append_checkpointed("pg", {A0: records(1)}, {"lsn": object()})
    assert log.end_offset(A0) == 0


def write_uncommitted(log: EmbeddedLog, tp: TopicPartition, source: str, n: int) -> None:
    """What a crash between writing the records and the commit leaves on disk."""
    p = log._partition(tp)
    seq = log._checkpoints.next_seq(source)
    batch = encode(
        records(n),
        1,
        attributes=ATTR_TRANSACTIONAL,
        producer_id=producer_id_for(source),
        producer_seq=seq,
    )
    with p.lock:
        p.append_locked(batch)
        p.flush_locked()


def test_records_without_a_durable_checkpoint_are_invisible_then_dropped_on_recovery(
    open_log: OpenLog,
) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig(partitions=2))
    log.append_checkpointed("pg", {A0: records(2), A1: records(1)}, {"lsn": 1})
    write_uncommitted(log, A0, "pg", 5)
    write_uncommitted(log, A1, "pg", 2)
    assert log.end_offset(A0) == 2
    assert [r.offset for r in log.read(A0, 0)] == [0, 1]
    log._lock.release()  # the process "dies": nothing is closed or flushed
    again = open_log()
    assert again.end_offset(A0) == 2 and again.end_offset(A1) == 1
    assert again.last_checkpoint("pg") == {"lsn": 1}
    again.append_checkpointed("pg", {A0: records(1)}, {"lsn": 2})
    assert [r.offset for r in again.read(A0, 0)] == [0, 1, 2]


def test_plain_appends_behind_checkpointed_ones_survive_recovery(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig())
    log.append_checkpointed("pg", {A0: records(2)}, {"lsn": 1})
    log.append(A0, records(1))
    log._lock.release()
    again = open_log()
    assert again.end_offset(A0) == 3


def test_a_failed_partition_write_rolls_back_the_others(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig(partitions=2))
    p1 = log._partition(A1)
    p1.failed = "simulated earlier failure"
    with pytest.raises(Exception, match="simulated"):
        log.append_checkpointed("pg", {A0: records(3), A1: records(1)}, {"lsn": 9})
    p1.failed = None
    assert log.end_offset(A0) == 0 and log._partition(A0).log_end == 0
    assert log.last_checkpoint("pg") is None
    log.append_checkpointed("pg", {A0: records(1)}, {"lsn": 10})
    assert log.last_checkpoint("pg") == {"lsn": 10}


def test_a_single_partition_append_commits_with_one_fsync(
    open_log: OpenLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig(partitions=2))
    syncs: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real(fd))[1])
    log.append_checkpointed("pg", {A0: records(3)}, {"lsn": 1})
    assert len(syncs) == 1  # the partition's; the checkpoint log's copy waits
    assert log.last_checkpoint("pg") == {"lsn": 1} and log.end_offset(A0) == 3
    syncs.clear()
    log.append_checkpointed("pg", {A0: records(1), A1: records(1)}, {"lsn": 2})
    assert len(syncs) == 3  # two partitions, then the commit (with the lazy copy before it)


def test_a_self_commit_whose_copy_never_reached_the_checkpoint_log_is_adopted(
    open_log: OpenLog,
) -> None:
    """The process dies between the batch's fsync and the copy of its commit."""
    log = open_log()
    log.create_topic("a", TopicConfig(partitions=2))
    log.append_checkpointed("pg", {A0: records(2), A1: records(1)}, {"lsn": 1})
    p = log._partition(A0)
    seq = log._checkpoints.next_seq("pg")
    block = self_commit_block("pg", {"lsn": 2})
    batch = encode(
        records(1), 1, producer_id=producer_id_for("pg"), producer_seq=seq, checkpoint=block
    )
    with p.lock:
        p.append_locked(batch)
        p.flush_locked()
    uncommitted = encode(
        records(2),
        1,
        attributes=ATTR_TRANSACTIONAL,
        producer_id=producer_id_for("pg"),
        producer_seq=seq + 1,
    )
    p1 = log._partition(A1)
    with p1.lock:  # an append of two partitions after it, which never committed
        p1.append_locked(uncommitted)
        p1.flush_locked()
    log._lock.release()
    again = open_log()
    assert again.last_checkpoint("pg") == {"lsn": 2}
    assert again.end_offset(A0) == 3 and again.end_offset(A1) == 1
    assert again._checkpoints.next_seq("pg") == seq + 1
    again._lock.release()
    third = open_log()  # the adopted commit was written to the checkpoint log, durably
    assert third.last_checkpoint("pg") == {"lsn": 2}


def test_rolling_a_partition_makes_copied_commits_durable_first(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig(segment_bytes=300))
    copies = log._checkpoints.partition
    log.append_checkpointed("pg", {A0: records(3)}, {"lsn": 1})
    assert copies.end_offset == 0  # the copy waits in memory, off the append's path
    log.append_checkpointed("pg", {A0: records(3)}, {"lsn": 2})  # rolls the segment
    assert len(log._partition(A0).segments) == 2
    # the roll wrote the first copy and made it durable before the batch left the active
    # segment; the second waits
    assert copies.end_offset == 1 and not copies.dirty
    assert [
        orjson.loads(r.value)["checkpoint"]
        for r in copies.read(0, max_records=100, max_bytes=1 << 20)
    ] == [{"lsn": 1}]


def test_a_copy_waits_at_most_the_copy_interval_even_when_the_source_goes_quiet(
    open_log: OpenLog,
) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig())
    began = time.monotonic()
    log.append_checkpointed("pg", {A0: records(1)}, {"lsn": 7})
    copies = log._checkpoints.partition
    deadline = began + COPY_INTERVAL_S + 5
    while copies.end_offset == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert copies.end_offset == 1, "the copy job did not write the waiting copy"
    assert orjson.loads(copies.read(0, max_records=100, max_bytes=1 << 20)[0].value)[
        "checkpoint"
    ] == {"lsn": 7}


def test_copies_keep_sequence_order_with_a_later_multi_partition_commit(
    open_log: OpenLog,
) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig(partitions=2))
    log.append_checkpointed("pg", {A0: records(1)}, {"lsn": 1})  # copy waits
    log.append_checkpointed("pg", {A0: records(1)}, {"lsn": 2})  # replaces the waiting copy
    log.append_checkpointed("pg", {A0: records(1), A1: records(1)}, {"lsn": 3})
    copies = log._checkpoints.partition
    written = [orjson.loads(r.value) for r in copies.read(0, max_records=100, max_bytes=1 << 20)]
    # the waiting copy first (compaction keeps a source's last record: it must be the newest)
    assert [(c["seq"], c["checkpoint"]) for c in written] == [(2, {"lsn": 2}), (3, {"lsn": 3})]


def test_a_clean_close_writes_the_waiting_copy(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig())
    log.append_checkpointed("pg", {A0: records(2)}, {"lsn": 9})
    log.close()
    again = open_log()  # a clean open: it does not scan the batches for self-commits
    assert again._checkpoints.partition.end_offset == 1
    assert again.last_checkpoint("pg") == {"lsn": 9}


def test_a_log_of_format_version_1_opens_and_its_active_segment_is_upgraded(
    open_log: OpenLog,
) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig(segment_bytes=300))
    for i in range(4):
        log.append_checkpointed("pg", {A0: records(3)}, {"lsn": i})
    directory = log._partition(A0).directory
    log.close()
    # what an older changehub wrote: version 1 segments, commits in the checkpoint log only
    segments = sorted(directory.glob("*.log"))
    assert len(segments) > 1
    for path in segments:
        with open(path, "r+b") as f:
            f.seek(4)
            f.write(b"\x01")
    again = open_log()
    assert again.last_checkpoint("pg") == {"lsn": 3}
    assert len(again.read(A0, 0, max_records=100)) == 3  # a closed version 1 segment reads
    again.append_checkpointed("pg", {A0: records(1)}, {"lsn": 4})
    assert again.end_offset(A0) == 13
    assert segments[-1].read_bytes()[4] == 2 and segments[0].read_bytes()[4] == 1


def test_deleting_a_topic_makes_the_copies_of_its_self_commits_durable(
    open_log: OpenLog,
) -> None:
    log = open_log()
    log.create_topic("a", TopicConfig())
    log.append_checkpointed("pg", {A0: records(1)}, {"lsn": 5})
    assert log._checkpoints.partition.end_offset == 0  # the copy waits in memory
    log.delete_topic("a")
    assert log._checkpoints.partition.end_offset == 1
    assert not log._checkpoints.partition.dirty
    log._lock.release()
    assert open_log().last_checkpoint("pg") == {"lsn": 5}


def test_a_copy_a_full_disk_refused_is_written_later_and_a_roll_waits_for_it(
    open_log: OpenLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the batch (and so the commit) is durable, but the disk fills before its copy goes into
    # the checkpoint log: the log must not be left failed until a reopen (the hub retries a
    # full disk), and no partition may roll past the batch before the copy is written
    import errno

    from hub.errors import LogFullError

    log = open_log()
    log.create_topic("a", TopicConfig(segment_bytes=300))
    store = log._checkpoints
    real_append = store.partition.append
    full = {"on": True}

    def append(*args: object, **kwargs: object) -> object:
        if full["on"]:
            raise LogFullError(os.strerror(errno.ENOSPC))
        return real_append(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store.partition, "append", append)
    log.append_checkpointed("pg", {A0: records(3)}, {"lsn": 1})  # the commit is the batch
    assert log.last_checkpoint("pg") == {"lsn": 1}
    assert store.partition.failed is None
    with pytest.raises(LogFullError):  # rolling would leave the batch's commit uncopied
        log.append_checkpointed("pg", {A0: records(3)}, {"lsn": 2})
    assert len(log._partition(A0).segments) == 1
    full["on"] = False  # space is freed: the retry goes through, the copy first
    log.append_checkpointed("pg", {A0: records(3)}, {"lsn": 2})
    assert len(log._partition(A0).segments) == 2
    log.close()
    again = open_log()
    assert again.last_checkpoint("pg") == {"lsn": 2}
    assert again.end_offset(A0) == 6
