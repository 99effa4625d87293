"""A full log disk is retried, not left to an operator: while appends fail with
LogFullError the source worker backs off (RETRYING), and once space is freed it starts the
source again from its last checkpoint, so every change is in the log exactly once. On a
real, small tmpfs (needs root, as the disk-full scenario does); no servers."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from connectors.api import ConnectorContext, Source, SourceBatch, SourceConfig, SourceRecord
from hub.backoff import Backoff
from hub.source_worker import SourceWorker
from hub.state import ConnectorState, ConnectorStatus
from log.api import TopicConfig, TopicPartition
from log.embedded import EmbeddedLog
from tests.reliability.rig import wait_until

TOTAL = 400  # changes of 2 KB: 800 KB, more than the space left
TP = TopicPartition("counting.t", 0)


class CountingSource(Source[SourceConfig]):
    """Changes 0, 1, 2 ... up to TOTAL, ten a batch, resuming after its checkpoint."""

    config_model = SourceConfig

    def start(self, checkpoint: Mapping[str, Any] | None) -> None:
        self.next = int(checkpoint["next"]) if checkpoint else 0

    def poll(self, timeout: float) -> SourceBatch | None:
        if self.next >= TOTAL:
            return None
        ids = range(self.next, min(self.next + 10, TOTAL))
        self.next = ids[-1] + 1
        return SourceBatch([SourceRecord(TP.topic, str(i).encode(), b"x" * 2048, 0)
                            for i in ids], {"next": self.next})

    def stop(self) -> None:
        return

    def topics(self) -> list[str]:
        return [TP.topic]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def leave_free(directory: Path, free_bytes: int) -> Path:
    """Fill the file system but for ``free_bytes``; returns the ballast file."""
    ballast = directory / "ballast"
    with open(ballast, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
        f.truncate(max(0, f.tell() - free_bytes))
    return ballast


def test_a_full_log_disk_is_retried_and_every_change_lands_once(
    small_disk: Path, tmp_path: Path
) -> None:
    log = EmbeddedLog(small_disk / "log")

    def ensure_topic(name: str) -> int:
        if name not in log.list_topics():
            log.create_topic(name, TopicConfig())
        return 1

    context = ConnectorContext("counting", log, tmp_path, logging.getLogger("test"))
    worker = SourceWorker(
        ConnectorStatus("counting", "source", "counting"),
        lambda: CountingSource(SourceConfig(name="counting", type="counting"), context),
        log, ensure_topic, Backoff(initial=0.05, maximum=0.2))
    ensure_topic(TP.topic)
    ballast = leave_free(small_disk, 256 * 1024)
    worker.start()
    try:
        wait_until(lambda: worker.status.retries >= 2
                   or worker.status.state == ConnectorState.FAILED,
                   "the worker to retry the full disk", 30)
        assert worker.status.state != ConnectorState.FAILED, worker.status
        assert "the disk is full" in (worker.status.error or ""), worker.status
        stuck_at = log.last_checkpoint("counting")
        assert stuck_at is not None and 0 < stuck_at["next"] < TOTAL  # some landed first
        ballast.unlink()
        wait_until(lambda: (log.last_checkpoint("counting") or {}).get("next") == TOTAL,
                   "every change in the log once space is freed", 30)
        assert worker.status.state == ConnectorState.RUNNING, worker.status
    finally:
        worker.stop()
        worker.join(10)
    keys = [r.key for r in log.read(TP, 0, max_records=10 * TOTAL)]
    log.close()
    assert keys == [str(i).encode() for i in range(TOTAL)]
