"""Following a log that another process writes (the read-only view used by the CLI).

A read-only :class:`~log.embedded.EmbeddedLog` never changes a file, so it can neither cut a
torn tail nor drop an uncommitted transaction: it *hides* them instead, by keeping each
partition's visible end before the first batch that is incomplete, fails its CRC, or belongs
to a checkpointed append whose commit it has not seen. :func:`refresh_partition` later takes
in what the writer appended since: new complete batches of the active segment, new segment
files after a roll, and leading segments deleted by retention.

Functions; they take the partition's lock.
"""

from __future__ import annotations

from collections.abc import Callable

from log import files
from log.batch import BatchError
from log.partition import PartitionLog, Visible
from log.segment import SEGMENT_HEADER, Segment

__all__ = ["open_view", "refresh_partition"]


def open_view(partition: PartitionLog, committed_seq: Callable[[int], int]) -> None:
    """Set the visible end of a freshly loaded read-only partition.

    Only the active segment can hold an unfinished transaction (the writer rolls a segment
    before writing a batch, and holds the partition for the whole transaction), so the walk
    starts at the active segment's first batch.
    """
    with partition.lock:
        active = partition.active
        partition.set_visible_locked(Visible(active.base_offset, active, len(SEGMENT_HEADER)))
        _advance_visible(partition, committed_seq)


def refresh_partition(
    partition: PartitionLog, committed_seq: Callable[[int], int], *, rescan: bool = False
) -> None:
    """Take in what the writing process did since the last look, then move the visible end.

    ``rescan``: a new writer process opened the log since the last look. Its recovery may
    have cut batches this view had scanned but not shown (a torn tail, an uncommitted
    transaction) and written others in their place, so what lies past the visible end is
    looked at afresh.
    """
    with partition.lock:
        if partition.closed:
            return
        if rescan:
            _rescan_from_visible(partition)
        try:
            _take_in_new_batches(partition)
            _advance_visible(partition, committed_seq)
        except BatchError:
            # The writer cut its tail under us (its recovery after a crash truncates a torn
            # batch or an uncommitted transaction). Only bytes past the visible end can go, so
            # look at the segments from the visible one on again, from scratch.
            _rescan_from_visible(partition)
            _advance_visible(partition, committed_seq)


def _rescan_from_visible(partition: PartitionLog) -> None:
    segments = list(partition.segments)
    visible = partition.visible
    start = next((i for i, s in enumerate(segments) if s is visible.segment), 0)
    for seg in segments[start:]:
        seg.scan()
    for base in files.segment_bases(partition.directory):
        if base > segments[-1].base_offset:
            seg = Segment.open_for_scan(partition.directory, base, partition.config.options)
            seg.scan()
            segments.append(seg)
    partition.replace_segments_locked(segments)
    if visible.position > visible.segment.size:
        # Cannot happen while the writer only cuts what was never visible; be safe anyway.
        first = segments[start]
        partition.set_visible_locked(Visible(first.base_offset, first, len(SEGMENT_HEADER)))


def _take_in_new_batches(partition: PartitionLog) -> None:
    segments = list(partition.segments)
    active = segments[-1]
    active.scan_more()
    newer = [b for b in files.segment_bases(partition.directory) if b > active.base_offset]
    if newer:
        active.scan_more()  # the writer sealed it before starting the next one
        for base in newer:
            seg = Segment.open_for_scan(partition.directory, base, partition.config.options)
            seg.scan()
            segments.append(seg)
    gone = 0
    while gone < len(segments) - 1 and not segments[gone].path.exists():
        gone += 1
    if newer or gone:
        partition.replace_segments_locked(segments[gone:])


def _advance_visible(partition: PartitionLog, committed_seq: Callable[[int], int]) -> None:
    visible = partition.visible
    segments = partition.segments
    try:
        i = next(i for i, s in enumerate(segments) if s is visible.segment)
    except StopIteration:
        i = 0
    end, pos = visible.end_offset, visible.position
    seg = segments[i]
    for seg in segments[i:]:
        start = pos if seg is visible.segment else len(SEGMENT_HEADER)
        pos = start
        for batch_pos, h in seg.iter_batches(start, seg.size):
            if h.transactional and h.producer_seq > committed_seq(h.producer_id):
                partition.set_visible_locked(Visible(end, seg, batch_pos))
                return
            end = h.next_offset
            pos = batch_pos + h.size
    partition.set_visible_locked(Visible(max(end, seg.next_offset), seg, seg.size))
