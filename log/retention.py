"""Retention: which old segments may go, and one deleter that removes them with a reason.

Each rule is a predicate over the closed segments of a partition, oldest first, that says how
many of the oldest may be deleted and why (as Kafka's ``UnifiedLog.deleteOldSegments``
hands its predicates to one ``deleteSegments``):

* :func:`by_time`: segments whose newest record is older than ``retention_ms``;
* :func:`by_size`: the oldest segments, as long as the rest still holds ``retention_bytes``.

Only whole closed segments are deleted, so the start offset moves to the base offset of the
first one kept; the active segment is never deleted (it rolls by ``segment_ms`` and goes at
a later check). Topics with ``cleanup: compact`` are compacted instead (:mod:`log.compaction`).

Functions; the deletion itself is serialised by the partition (thread-safe).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from log.api import TopicConfig
from log.partition import PartitionLog
from log.segment import Segment

__all__ = ["RULES", "by_size", "by_time", "enforce_retention"]

Rule = Callable[[Sequence[Segment], int, TopicConfig, int], tuple[int, str]]


def by_time(
    closed: Sequence[Segment], _total_bytes: int, config: TopicConfig, now_ms: int
) -> tuple[int, str]:
    if config.retention_ms is None:
        return 0, ""
    limit = now_ms - config.retention_ms
    n = 0
    for seg in closed:
        if seg.max_timestamp >= limit:
            break
        n += 1
    return n, f"newest record older than retention_ms={config.retention_ms}"


def by_size(
    closed: Sequence[Segment], total_bytes: int, config: TopicConfig, _now_ms: int
) -> tuple[int, str]:
    if config.retention_bytes is None:
        return 0, ""
    excess = total_bytes - config.retention_bytes
    n = 0
    for seg in closed:
        if excess - seg.size < 0:
            break
        excess -= seg.size
        n += 1
    return n, f"partition larger than retention_bytes={config.retention_bytes}"


RULES: tuple[Rule, ...] = (by_time, by_size)


def enforce_retention(partition: PartitionLog, config: TopicConfig, now_ms: int) -> int:
    """Apply every rule to ``partition``; returns how many segments were deleted."""
    if config.cleanup != "delete":
        return 0
    deleted = 0
    for rule in RULES:
        closed = partition.closed_segments()
        n, reason = rule(closed, partition.size_bytes, config, now_ms)
        if n:
            deleted += partition.delete_segments(closed[:n], reason)
    return deleted
