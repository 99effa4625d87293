"""Compaction of ``cleanup: compact`` topics: keep the latest record of every key.

As Kafka's ``LogCleaner``, in two passes over the closed segments of a partition (the active
segment, and any segment holding records not yet visible, is never touched):

1. build a map key -> offset of its latest record;
2. rewrite each segment holding records to drop — a record whose key has a later record, or
   a tombstone (null value) older than ``delete_retention_ms`` — into
   ``<partition>/cleaning/<base>.log`` (same base offset, batches with offset gaps), with its
   indexes, fsync'd; then swap it in under the partition lock: delete the old indexes, rename
   the new log over the old one (atomic), move the new indexes in, fsync the directory. A
   crash at any point leaves either the old or the new segment file, and indexes that are
   rebuilt if missing; recovery deletes a half-written ``cleaning/`` directory.

Segments younger than ``min_compaction_lag_ms`` (by their newest record) are left alone.
Records without a key cannot be compacted and are kept. The last record before the active
segment is always kept, even a due tombstone, so that a reader positioned in a gap always
finds a record at or after its offset. Readers keep reading the old segment file they have
open while the new one is swapped in; appends go on meanwhile, as only the swap takes the
partition lock.

Memory: the map holds every distinct key of the compacted range once.

Functions; a partition is compacted by one thread at a time (the compaction job).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from hub.errors import CorruptLogError
from log import files
from log.api import TopicConfig
from log.batch import BatchError, Columns, decode_columns, encode_columns, set_base_offset, validate
from log.partition import PartitionLog, fsync_dir
from log.segment import SEGMENT_HEADER, Segment, SegmentError, SegmentOptions

__all__ = ["compact_partition"]

_log = logging.getLogger(__name__)


def _batches(partition: PartitionLog, seg: Segment) -> Iterator[Columns]:
    """Every batch of a closed segment, validated, as columns."""
    try:
        for pos, h in seg.iter_batches(len(SEGMENT_HEADER), seg.size):
            data = seg.read_at(pos, h.size)
            validate(data)
            yield decode_columns(data, 0, h)
    except (BatchError, SegmentError) as e:
        raise CorruptLogError(
            f"{partition.tp}: cannot compact {seg.path}: {e}",
            topic=partition.tp.topic,
            partition=partition.tp.partition,
            offset=None,
        ) from e


def compact_partition(partition: PartitionLog, config: TopicConfig, now_ms: int) -> int:
    """Compact the closed segments of one partition; returns how many were rewritten."""
    closed = partition.closed_segments()
    horizon = now_ms - config.min_compaction_lag_ms
    eligible = []
    for seg in closed:
        if seg.max_timestamp > horizon:
            break
        eligible.append(seg)
    state = (tuple(s.base_offset for s in eligible), tuple(s.size for s in eligible))
    last_state, tombstones_due = partition.compaction_state
    unchanged = state == last_state and (tombstones_due is None or now_ms < tombstones_due)
    if not eligible or unchanged:
        return 0
    with partition.pinned():
        latest: dict[bytes | None, int] = {}
        last_offset = -1
        for seg in eligible:
            for cols in _batches(partition, seg):
                latest.update(zip(cols.keys, cols.offsets, strict=True))
                last_offset = cols.offsets[-1]
        latest.pop(None, None)
        tombstone_horizon = now_ms - config.delete_retention_ms
        # the last record before the active segment stays (see the module doc)
        protected = last_offset if eligible[-1] is closed[-1] else -1
        rewritten = 0
        next_due: int | None = None
        for seg in eligible:
            plan, due = _plan(partition, seg, latest, tombstone_horizon, protected)
            if due is not None:
                due += config.delete_retention_ms
                next_due = due if next_due is None else min(next_due, due)
            if plan is None:
                continue
            rewritten += _rewrite(partition, seg, plan, now_ms)
    partition.compaction_state = (
        (
            tuple(s.base_offset for s in partition.closed_segments()),
            tuple(s.size for s in partition.closed_segments()),
        ),
        next_due,
    )
    if rewritten:
        _log.info("compacted %d segment(s) of %s", rewritten, partition.tp)
    return rewritten


def _plan(
    partition: PartitionLog,
    seg: Segment,
    latest: dict[bytes | None, int],
    tombstone_horizon: int,
    protected: int,
) -> tuple[list[Columns] | None, int | None]:
    """The batches of ``seg`` with only the records to keep (None: nothing to drop), and the
    timestamp of the oldest tombstone kept only because it is not due yet."""
    kept_batches: list[Columns] = []
    dropped = False
    oldest_kept_tombstone: int | None = None
    for cols in _batches(partition, seg):
        keep = []
        for i, (key, offset) in enumerate(zip(cols.keys, cols.offsets, strict=True)):
            if key is not None and latest.get(key) != offset:
                continue
            if key is not None and cols.values[i] is None and offset != protected:
                ts = cols.timestamps[i]
                if ts < tombstone_horizon:
                    continue
                oldest_kept_tombstone = (
                    ts if oldest_kept_tombstone is None else min(oldest_kept_tombstone, ts)
                )
            keep.append(i)
        if len(keep) != len(cols.keys):
            dropped = True
        if keep:
            kept_batches.append(
                Columns(
                    [cols.offsets[i] for i in keep],
                    [cols.timestamps[i] for i in keep],
                    [cols.keys[i] for i in keep],
                    [cols.values[i] for i in keep],
                    [cols.headers[i] for i in keep],
                )
            )
    return (kept_batches if dropped else None), oldest_kept_tombstone


def _rewrite(partition: PartitionLog, old: Segment, batches: list[Columns], now_ms: int) -> int:
    cleaning = files.cleaning_dir(partition.directory)
    if cleaning.exists():
        shutil.rmtree(cleaning)
    cleaning.mkdir()
    new: Segment | None = None
    try:
        if batches or old.base_offset == partition.start_offset:
            options = SegmentOptions(partition.config.index_interval_bytes, dense=False)
            new = Segment.create(cleaning, old.base_offset, options)
            for c in batches:
                base = c.offsets[0]
                headers = None if all(not h for h in c.headers) else c.headers
                batch = encode_columns(
                    c.keys,
                    c.values,
                    c.timestamps,
                    headers,
                    offset_deltas=[o - base for o in c.offsets],
                )
                set_base_offset(batch, base)
                new.append(batch, base, now_ms)
            new.seal()
            new.unload_indexes()
            new.next_offset = old.next_offset
            fsync_dir(cleaning)
        if not _swap(partition, old, new, cleaning):
            if new is not None:
                new.close()
            return 0
        return 1
    finally:
        shutil.rmtree(cleaning, ignore_errors=True)


def _swap(partition: PartitionLog, old: Segment, new: Segment | None, cleaning: Path) -> bool:
    def move_in() -> None:
        old.retire()
        old.offset_index.delete()
        old.time_index.delete()
        fsync_dir(partition.directory)
        if new is None:
            old.path.unlink()
        else:
            for name in (files.log_file, files.index_file, files.time_index_file):
                base = old.base_offset
                os.replace(name(cleaning, base), name(partition.directory, base))
            new.moved_to(partition.directory)
        fsync_dir(partition.directory)

    return partition.replace_segment(old, new, before_swap=move_in)
