"""Shared by the crash, property and corruption tests of the embedded log."""

from __future__ import annotations

from pathlib import Path

from log.api import LogRecord, TopicPartition
from log.embedded import EmbeddedLog


def crash(log: EmbeddedLog) -> None:
    """Abandon ``log`` as a killed process would: close descriptors, flush and write nothing."""
    for job in log._jobs:
        job.stop()
    if log._flusher is not None:
        log._flusher.close()
    parts = [p for t in log._topics.values() for p in t.partitions]
    parts.append(log._checkpoints.partition)
    for p in parts:
        p.closed = True
        for seg in p.segments:
            seg.close()
    log._closed = True
    log._lock.release()


def read_all(log: EmbeddedLog, tp: TopicPartition) -> list[LogRecord]:
    out: list[LogRecord] = []
    offset = log.start_offset(tp)
    end = log.end_offset(tp)
    while offset < end:
        got = log.read(tp, offset)
        assert got, f"no record at or after {offset} below the end {end}"
        out += got
        offset = got[-1].offset + 1
    return out


def segment_files(root: Path, topic: str, partition: int, suffix: str = ".log") -> list[Path]:
    return sorted((root / "topics" / topic / str(partition)).glob("*" + suffix))
