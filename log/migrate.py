"""Moving a pipeline's log to another backend without re-snapshotting (``migrate-log``).

:func:`migrate` copies, from one :class:`~log.api.Log` to another:

1. the records of each topic, partition by partition and in order, with keys, values,
   timestamps and headers (the topic is created in the destination with the source's
   settings, passed through ``topic_config`` to change e.g. the replication factor);
2. the last checkpoint of each source named, as a checkpointed append without records, so
   the source resumes where it stopped;
3. the committed offsets of each sink group, translated to the destination's offsets.

Offsets are not kept as they are: Kafka's transaction markers and compaction leave gaps that
the destination does not have (or has elsewhere). Each copied record's source offset is
remembered next to its new one, and a group's next offset ``o`` becomes the new offset of the
first copied record at or after ``o`` (the destination's end when there is none), so every
sink goes on with exactly the records it had not read.

It reads and writes through the :class:`~log.api.Log` interface only, so it does not depend
on the embedded log's on-disk format version (``log/FORMAT.md``): a version 1 log opens as it
is, and the checkpoints it held in batches (version 2's self-committing batches) come out
of ``last_checkpoint`` like any other.

Run it with the hub stopped: records or checkpoints written during the copy would be missed.
Destination partitions must be empty; a failed migration is redone after deleting the
topics it created in the destination.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hub.errors import UsageError
from log.api import Log, Record, TopicConfig, TopicPartition

__all__ = ["MigrationReport", "migrate"]

_BATCH = 5_000


@dataclass
class MigrationReport:
    """What :func:`migrate` copied (for the CLI to print)."""

    records: dict[str, int] = field(default_factory=dict)  # per topic
    groups: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)  # new offsets
    sources: list[str] = field(default_factory=list)
    skipped_offsets: dict[str, list[TopicPartition]] = field(default_factory=dict)


class _OffsetMap:
    """Source offset -> destination offset of the copied records of one partition."""

    def __init__(self, dst_end: int) -> None:
        self.src = array("q")
        self.dst = array("q")
        self.dst_end = dst_end

    def add(self, src: int, dst: int) -> None:
        self.src.append(src)
        self.dst.append(dst)

    def translate(self, offset: int) -> int:
        i = bisect.bisect_left(self.src, offset)
        return self.dst[i] if i < len(self.src) else self.dst_end


def migrate(
    src: Log,
    dst: Log,
    *,
    topics: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    sources: Sequence[str] = (),
    topic_config: Callable[[str, TopicConfig], TopicConfig] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> MigrationReport:
    """Copy ``topics`` (default: all), ``groups`` (default: all) and the checkpoints of
    ``sources`` from ``src`` to ``dst``. ``progress(topic, records_so_far)`` is called per
    batch. See the module doc."""
    report = MigrationReport()
    maps: dict[TopicPartition, _OffsetMap] = {}
    for name in sorted(topics) if topics is not None else src.list_topics():
        config = src.topic_config(name)
        if topic_config is not None:
            config = topic_config(name, config)
        dst.create_topic(name, config)
        copied = 0
        for partition in range(config.partitions):
            tp = TopicPartition(name, partition)
            if dst.end_offset(tp) > dst.start_offset(tp):
                raise UsageError(
                    f"{tp} already has records in the destination log; migrate into empty "
                    "topics (delete the topic there first)"
                )
            maps[tp], n = _copy_partition(src, dst, tp, copied, name, progress)
            copied += n
        report.records[name] = copied
    for source in sources:
        checkpoint = src.last_checkpoint(source)
        if checkpoint is not None:
            dst.append_checkpointed(source, {}, checkpoint)
            report.sources.append(source)
    for group in groups if groups is not None else src.list_groups():
        committed = src.committed_offsets(group)
        new = {tp: maps[tp].translate(o) for tp, o in committed.items() if tp in maps}
        skipped = sorted(tp for tp in committed if tp not in maps)
        if skipped:
            report.skipped_offsets[group] = skipped
        if new:
            dst.commit_offsets(group, new)
            report.groups[group] = new
    return report


def _copy_partition(
    src: Log,
    dst: Log,
    tp: TopicPartition,
    copied_before: int,
    name: str,
    progress: Callable[[str, int], None] | None,
) -> tuple[_OffsetMap, int]:
    offset, end = src.start_offset(tp), src.end_offset(tp)
    offsets = _OffsetMap(dst.end_offset(tp))
    n = 0
    while offset < end:
        batch = src.read(tp, offset, max_records=_BATCH)
        if not batch:
            break  # only gaps (transaction markers, compacted records) up to the end
        base = dst.append(tp, [Record(r.key, r.value, r.timestamp_ms, r.headers) for r in batch])
        for i, r in enumerate(batch):
            offsets.add(r.offset, base + i)
        offsets.dst_end = base + len(batch)
        n += len(batch)
        offset = batch[-1].offset + 1
        if progress is not None:
            progress(name, copied_before + n)
    return offsets, n
