"""A full disk and a read-only file system, on a real (small) tmpfs mounted for the test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.errors import LogStorageError
from log.api import Record, TopicConfig, TopicPartition

from .conftest import OpenLog

TP = TopicPartition("t", 0)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
        check=False,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_fails_the_append_and_leaves_no_partial_batch(
    open_log: OpenLog, small_disk: Path
) -> None:
    log = open_log(path=small_disk / "log")
    log.create_topic("t", TopicConfig())
    acked = 0
    with pytest.raises(LogStorageError, match="disk is full"):
        for _ in range(1000):
            log.append(TP, [Record(b"k", b"x" * 1000)] * 10)
            acked += 10
    assert log.end_offset(TP) == acked
    assert len(log.read(TP, acked - 1)) == 1
    log.close()
    again = open_log(path=small_disk / "log")
    assert again.end_offset(TP) == acked
    again.close()


def test_a_read_only_file_system_is_a_storage_error(open_log: OpenLog, small_disk: Path) -> None:
    log = open_log(path=small_disk / "log")
    log.create_topic("t", TopicConfig())
    log.append(TP, [Record(b"k", b"v")])
    log.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(LogStorageError, match="not writable"):
        open_log(path=small_disk / "log")
    view = open_log(path=small_disk / "log", read_only=True)
    assert view.end_offset(TP) == 1
