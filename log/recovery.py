"""Opening a partition after a clean close or a crash, in passes (as Kafka's ``LogLoader``):

1. **leftovers**: delete temporary files (``*.tmp``), compacted segments never swapped in
   (``cleaning/``) and index files whose segment is gone;
2. **segments**: open the closed segments without reading them (their indexes load, and are
   rebuilt if they fail the sanity check, on first use); scan the active segment batch by
   batch (framing, CRC32C, offsets), cut off a torn or corrupt tail and rebuild its indexes.
   After a clean shutdown (the ``CLEAN_SHUTDOWN`` marker) only the batches after the active
   segment's last index entry are checked, as Kafka skips recovery after a clean shutdown;
   anything that does not add up falls back to the full scan;
3. **self-commits** (:func:`adopt_self_commits`, once the checkpoint log is loaded): a
   checkpointed append that wrote one partition carries its checkpoint in its batch, and the
   checkpoint log gets a copy only lazily (not fsync'd); a whole such batch in an active
   segment newer than its source's last commit in the checkpoint log is that source's commit
   (the copy was lost with the page cache, or the process died before writing it), so it is
   written to the checkpoint log now. Only active segments need looking at: a partition is
   not rolled while the checkpoint log holds a commit that is not durable;
4. **transactions** (:func:`truncate_uncommitted`, after every partition's self-commits were
   adopted): drop a tail written by a checkpointed append whose checkpoint never became
   durable.

An acknowledged batch is never lost by this: it was fsync'd (policy permitting) before the
append returned, so it is whole and its CRC matches; only bytes written after the last
acknowledged batch can be torn.

Functions, run before the partition is shared: not thread-safe.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from hub.errors import CorruptLogError
from log import files
from log.api import TopicPartition
from log.batch import BatchError
from log.checkpoints import CheckpointStore
from log.partition import PartitionLog, SegmentConfig, fsync_dir
from log.segment import Segment

__all__ = ["adopt_self_commits", "load_partition", "remove_leftovers", "truncate_uncommitted"]

_log = logging.getLogger(__name__)


def remove_leftovers(directory: Path) -> None:
    """Pass 1: delete what an interrupted write, compaction or deletion left behind."""
    cleaning = files.cleaning_dir(directory)
    if cleaning.exists():
        shutil.rmtree(cleaning)
    names = {p.name for p in directory.iterdir() if p.is_file()}
    logs = {n[: -len(files.LOG_SUFFIX)] for n in names if n.endswith(files.LOG_SUFFIX)}
    removed = False
    for name in names:
        stem = name.split(".", 1)[0]
        orphan_index = (
            name.endswith((files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX)) and stem not in logs
        )
        if name.endswith(files.TMP_SUFFIX) or orphan_index:
            (directory / name).unlink()
            removed = True
    if removed:
        fsync_dir(directory)


def load_partition(
    tp: TopicPartition,
    directory: Path,
    config: SegmentConfig,
    *,
    clock_ms: Callable[[], int],
    clean: bool = False,
) -> PartitionLog:
    """Passes 1 and 2 for one partition directory (created if missing).

    After a ``clean`` shutdown the active segment's state comes from its indexes and the
    batches after the last index entry (validated) instead of a scan of the whole segment.
    With a read-only ``config`` nothing is changed: a torn tail is left out, not cut off.
    """
    if not config.writable:
        return _load_view(tp, directory, config, clock_ms=clock_ms)
    if not directory.exists():
        directory.mkdir(parents=True)
        fsync_dir(directory.parent)
    remove_leftovers(directory)
    bases = files.segment_bases(directory)
    segments: list[Segment] = []
    try:
        if not bases:
            segments.append(Segment.create(directory, 0, config.options))
            fsync_dir(directory)
        else:
            for base, next_base in itertools.pairwise(bases):
                segments.append(Segment.open_closed(directory, base, next_base, config.options))
            active = Segment.open_for_scan(directory, bases[-1], config.options)
            segments.append(active)
            version = active.unknown_version()
            if version is not None:
                raise CorruptLogError(
                    f"{tp}: {active.path} is in segment format version {version}, which this "
                    "changehub does not read (a newer changehub wrote it); open the log with "
                    "that version. Nothing was changed.",
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=active.base_offset,
                )
            if clean and active.resume():
                active.upgrade()
                return PartitionLog(tp, directory, config, segments, clock_ms=clock_ms)
            result = active.recover()
            active.upgrade()
            if result.error is not None:
                _log.warning(
                    "%s: cut the active segment %s at byte %d (offset %d): %s",
                    tp,
                    active.path.name,
                    result.valid_bytes,
                    result.next_offset,
                    result.error,
                )
    except BaseException:
        for s in segments:
            s.close()
        raise
    return PartitionLog(tp, directory, config, segments, clock_ms=clock_ms)


def _load_view(
    tp: TopicPartition, directory: Path, config: SegmentConfig, *, clock_ms: Callable[[], int]
) -> PartitionLog:
    bases = files.segment_bases(directory) if directory.is_dir() else []
    if not bases:
        raise CorruptLogError(
            f"{tp}: {directory} holds no segment files; open the log once for writing (start "
            "the hub) to recover it",
            topic=tp.topic,
            partition=tp.partition,
            offset=None,
        )
    segments: list[Segment] = []
    try:
        for base, next_base in itertools.pairwise(bases):
            segments.append(Segment.open_closed(directory, base, next_base, config.options))
        active = Segment.open_for_scan(directory, bases[-1], config.options)
        segments.append(active)
        active.scan()
    except BaseException:
        for s in segments:
            s.close()
        raise
    return PartitionLog(tp, directory, config, segments, clock_ms=clock_ms)


def adopt_self_commits(partition: PartitionLog, store: CheckpointStore) -> int:
    """Pass 3: make the checkpoint log hold the commits carried by self-committing batches of
    the partition's active segment that it is missing; returns how many it adopted."""
    active = partition.active
    adopted = 0
    for producer_id, (pos, seq) in sorted(active.self_commits.items()):
        if seq <= store.committed_seq(producer_id):
            continue
        try:
            h, blob = active.self_commit_at(pos)
        except BatchError as e:  # it was validated by the scan: the file changed under us
            raise CorruptLogError(
                f"{partition.tp}: the checkpoint in the batch at byte {pos} cannot be read: {e}",
                topic=partition.tp.topic,
                partition=partition.tp.partition,
                offset=None,
            ) from e
        store.adopt(blob, producer_id, seq, {partition.tp: h.next_offset})
        _log.info(
            "%s: took the checkpoint of producer %d (sequence %d) from its batch at offset %d",
            partition.tp,
            producer_id,
            seq,
            h.base_offset,
        )
        adopted += 1
    return adopted


def truncate_uncommitted(partition: PartitionLog, committed_seq: Callable[[int], int]) -> int:
    """Pass 4: cut a transactional tail whose checkpoint is not durable; returns offsets dropped.

    ``committed_seq(producer_id)`` is the sequence number of that producer's last durable
    checkpoint. Transactions on a partition are serialised, so only its last batch can belong
    to an unfinished one; the loop is a safety net.
    """
    dropped = 0
    while True:
        last = None
        for seg in reversed(partition.segments):
            seg.ensure_indexes()
            if seg.last_batch is not None:
                last = seg.last_batch
                break
        if last is None or not last.transactional:
            return dropped
        if last.producer_seq <= committed_seq(last.producer_id):
            return dropped
        _log.warning(
            "%s: dropping offsets %d..%d, written by a checkpointed append whose checkpoint "
            "was not durable when the log stopped; the source sends them again",
            partition.tp,
            last.base_offset,
            last.next_offset - 1,
        )
        dropped += partition.log_end - last.base_offset
        partition.recover_truncate(last.base_offset)
