from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from hub.errors import UsageError
from log.api import Durability, TopicConfig, TopicPartition

from .conftest import OpenLog, records

TP = TopicPartition("t", 0)


@pytest.mark.parametrize("policy", ["batch", "interval", "never"])
def test_every_policy_acknowledges_visible_records(open_log: OpenLog, policy: str) -> None:
    log = open_log(durability=Durability(policy, interval_ms=5))  # type: ignore[arg-type]
    log.create_topic("t", TopicConfig())
    for i in range(5):
        assert log.append(TP, records(3, start=i * 3)) == i * 3
    assert log.end_offset(TP) == 15
    log.append_checkpointed("src", {TP: records(1)}, {"pos": 1})
    assert log.end_offset(TP) == 16
    log.close()
    again = open_log(durability=Durability(policy))  # type: ignore[arg-type]
    assert again.end_offset(TP) == 16


def test_interval_policy_appends_wait_for_a_flush_round(open_log: OpenLog) -> None:
    log = open_log(durability=Durability("interval", interval_ms=20))
    log.create_topic("t", TopicConfig())
    p = log._partition(TP)
    flushes = []
    real_flush = p.flush_locked

    def counting_flush() -> None:
        flushes.append(p.log_end)
        real_flush()

    p.flush_locked = counting_flush  # type: ignore[method-assign]
    threads = [threading.Thread(target=log.append, args=(TP, records(2))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.end_offset(TP) == 16
    assert flushes and flushes[-1] == 16
    assert len(flushes) < 8  # appends share fsyncs


@pytest.mark.parametrize(("policy", "syncs"), [("batch", True), ("never", False)])
def test_an_append_returns_only_after_the_fsync_its_policy_asks_for(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str, syncs: bool
) -> None:
    log = open_log(durability=Durability(policy))  # type: ignore[arg-type]
    log.create_topic("t", TopicConfig())
    [segment] = (tmp_path / "log" / "topics" / "t" / "0").glob("*.log")
    inode = segment.stat().st_ino
    synced: list[int] = []  # the segment's size at each fdatasync of it
    real = os.fdatasync

    def spy(fd: int) -> None:
        real(fd)
        st = os.fstat(fd)
        if st.st_ino == inode:
            synced.append(st.st_size)

    monkeypatch.setattr(os, "fdatasync", spy)
    for i in range(4):
        log.append(TP, records(5, start=i * 5))
        size = segment.stat().st_size
        if syncs:  # the bytes of this append were on disk before append() returned
            assert synced and synced[-1] == size
        else:
            assert synced == []
    assert len(synced) == (4 if syncs else 0)


def test_unknown_policy_is_a_usage_error(open_log: OpenLog) -> None:
    with pytest.raises(UsageError, match="durability policy"):
        open_log(durability=Durability("sometimes"))  # type: ignore[arg-type]
