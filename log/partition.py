"""One partition of a topic: its list of segments, its offsets, and who may see what.

Three offsets matter (all "one past the last record"):

* ``log_end``: what has been written to the active segment;
* the *visible* (stable) end: what readers may see. A plain append becomes visible once its
  durability policy is met; a transactional append (part of a checkpointed append) only when
  the checkpoint covering it is durable, so a reader never sees what recovery could take back;
* ``start_offset``: the base offset of the oldest segment; retention moves it forward.

Thread safety: writers (appends, rolls, truncation, segment deletion and replacement) hold
:attr:`PartitionLog.lock`; methods named ``*_locked`` expect the caller to hold it, so that a
checkpointed append can keep several partitions locked for the whole transaction. Readers
take no lock: they read an immutable snapshot of the segment list and the visible end, and
*pin* the partition while they use segment descriptors, so that a segment deleted by retention
or replaced by compaction is only closed once no reader uses it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import NamedTuple, TypeVar

from hub.errors import (
    CorruptLogError,
    LogClosedError,
    LogFullError,
    LogStorageError,
    OffsetOutOfRangeError,
    UnknownTopicError,
)
from log.api import LogRecord, Record, TopicPartition
from log.batch import (
    HEADER_SIZE,
    BatchError,
    BatchHeader,
    BlockColumns,
    EncodedBatch,
    decode_block,
    decode_records,
    encode,
    read_header,
    set_base_offset,
    validate,
)
from log.segment import Segment, SegmentError, SegmentOptions
from log.waiting import Waiter, WaiterSet

__all__ = ["PartitionLog", "SegmentConfig", "Visible", "fsync_dir", "storage_error"]

_READ_CHUNK = 1024 * 1024

# What a read makes of each batch: records, or its columns (decode(buf, pos, header, lo, hi)
# keeps the records with lo <= offset < hi).
_Part = TypeVar("_Part", bound=Sized)
_Decode = Callable[[bytes, int, BatchHeader, int, int], _Part]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentConfig:
    """How a partition lays out its segments."""

    segment_bytes: int = 128 * 1024 * 1024
    segment_ms: int = 7 * 24 * 3600 * 1000
    index_interval_bytes: int = 4096
    dense: bool = True  # False for compacted topics, whose offsets may have gaps
    writable: bool = True  # False for a read-only view of a log another process writes

    @property
    def options(self) -> SegmentOptions:
        return SegmentOptions(self.index_interval_bytes, self.dense, self.writable)


class Visible(NamedTuple):
    """The stable end and where it lies on disk: readers stop there."""

    end_offset: int
    segment: Segment
    position: int


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (created, renamed, deleted files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def storage_error(e: OSError, what: str) -> LogStorageError:
    """A LogStorageError that says what failed and what the person should do about it; a
    LogFullError (retried by the hub) when the disk or quota is full."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "the disk is full: free space or move the log to a larger disk"
        return LogFullError(f"{what}: {e.strerror or e} ({hint})")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "the log directory is not writable: fix its permissions or mount"
    else:
        hint = "check the disk and the system log"
    return LogStorageError(f"{what}: {e.strerror or e} ({hint})")


class PartitionLog:
    """The segments of one partition. See the module doc for the threading rules."""

    def __init__(
        self,
        tp: TopicPartition,
        directory: Path,
        config: SegmentConfig,
        segments: list[Segment],
        *,
        clock_ms: Callable[[], int],
    ) -> None:
        if not segments:
            raise ValueError("a partition has at least one segment")
        self.tp = tp
        self.directory = directory
        self.config = config
        self.clock_ms = clock_ms
        self.lock = threading.Lock()
        self._segments = segments  # replaced, never mutated: readers keep a consistent copy
        self._bases = [s.base_offset for s in segments]
        active = segments[-1]
        self._visible = Visible(active.next_offset, active, active.size)
        self.waiters = WaiterSet()
        self.dirty = False  # appended but not yet fsync'd
        self.failed: str | None = None  # a write failed and could not be undone
        # run (under the lock) before the active segment is sealed: the log makes lazily
        # written checkpoint commits durable there, since recovery only scans active segments
        # for the self-committing batches they copy
        self.before_roll: Callable[[], None] | None = None
        self.deleted = False
        self.closed = False
        self._pin_lock = threading.Lock()
        self._readers = 0
        self._graveyard: list[Segment] = []
        # what the last compaction saw (closed segments) and when a kept tombstone falls due
        self.compaction_state: tuple[object, int | None] = (None, None)

    def __repr__(self) -> str:
        return f"PartitionLog({self.tp}, {self.start_offset}..{self.end_offset})"

    # -- offsets ------------------------------------------------------------------------------

    @property
    def start_offset(self) -> int:
        return self._bases[0]

    @property
    def end_offset(self) -> int:
        """The visible (stable) end."""
        return self._visible.end_offset

    @property
    def log_end(self) -> int:
        return self._segments[-1].next_offset

    @property
    def active(self) -> Segment:
        return self._segments[-1]

    @property
    def segments(self) -> list[Segment]:
        return self._segments

    @property
    def visible(self) -> Visible:
        return self._visible

    def set_visible_locked(self, visible: Visible) -> None:
        if visible != self._visible:
            self._visible = visible
            self.waiters.fire_all()

    def replace_segments_locked(self, segments: list[Segment]) -> None:
        """Install a new segment list (read-only refresh); dropped segments are retired."""
        keep = {id(s) for s in segments}
        self._retire([s for s in self._segments if id(s) not in keep])
        self._set_segments(segments)

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    # -- writing ------------------------------------------------------------------------------

    def append(self, records: Sequence[Record], *, sync: bool, publish: bool) -> int:
        """Append a plain batch; fsync if ``sync``; make it visible if ``publish``."""
        batch = encode(records, self.clock_ms())
        with self.lock:
            base = self.append_locked(batch)
            if sync:
                self.flush_locked()
            if publish:
                self.publish_locked()
            return base

    def append_locked(self, batch: EncodedBatch) -> int:
        """Write one encoded batch after the current end; return its base offset.

        Not visible until :meth:`publish_locked`; not durable until :meth:`flush_locked`.
        A failed write leaves the segment as it was.
        """
        self._check_writable()
        active = self.active
        size = batch.size
        now = self.clock_ms()
        if not active.empty and (
            active.size + size > self.config.segment_bytes
            or (active.created_ms is not None and now - active.created_ms >= self.config.segment_ms)
        ):
            self.roll_locked()
            active = self.active
        base = active.next_offset
        set_base_offset(batch, base)
        try:
            active.append(batch, base, now)
        except OSError as e:
            if (
                e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
                or active.size != os.fstat(active.fd).st_size
            ):
                self.failed = f"a write failed: {e}"
            raise storage_error(e, f"cannot append to {self.tp} in {self.directory}") from e
        self.dirty = True
        return base

    def flush_locked(self) -> None:
        if not self.dirty:
            return
        try:
            self.active.flush()
        except OSError as e:
            # after a failed fsync the kernel may have dropped the dirty pages: only a reopen
            # (which re-reads and validates the files) tells what is really on disk
            self.failed = f"fsync failed: {e}"
            raise storage_error(e, f"cannot fsync {self.tp} in {self.directory}") from e
        self.dirty = False

    def publish_locked(self) -> None:
        """Make everything written so far visible and wake the readers waiting for it."""
        active = self.active
        if self._visible.end_offset != active.next_offset or self._visible.segment is not active:
            self._visible = Visible(active.next_offset, active, active.size)
            self.waiters.fire_all()

    def flush_and_publish(self) -> None:
        """The interval flusher's step for this partition."""
        with self.lock:
            if self.closed or self.failed:
                return
            self.flush_locked()
            self.publish_locked()

    def roll_locked(self) -> None:
        """Seal the active segment and start a new one at the log end."""
        old = self.active
        if self.before_roll is not None:
            self.before_roll()
        try:
            old.seal()
            new = Segment.create(self.directory, old.next_offset, self.config.options)
            fsync_dir(self.directory)
        except OSError as e:
            raise storage_error(e, f"cannot start a new segment for {self.tp}") from e
        self.dirty = False
        self._set_segments([*self._segments, new])
        old.unload_indexes()

    def truncate_locked(self, offset: int) -> None:
        """Remove everything at and after ``offset`` (which must start a batch).

        Only what no reader has seen may go: ``offset`` must not be below the visible end.
        """
        if offset < self._visible.end_offset:
            raise ValueError(f"cannot take back visible records of {self.tp} below {offset}")
        self._truncate(offset)

    def _truncate(self, offset: int) -> None:
        try:
            keep = [s for s in self._segments if s.base_offset < offset or s is self._segments[0]]
            for s in self._segments[len(keep) :]:
                s.retire()
                self._retire([s])
                s.delete_files()
            last = keep[-1]
            last.ensure_indexes()
            last.truncate_to(offset)
            last.flush()
            if len(keep) != len(self._segments):
                fsync_dir(self.directory)
        except (OSError, SegmentError) as e:
            self.failed = f"truncation to {offset} failed: {e}"
            raise LogStorageError(f"cannot truncate {self.tp} to offset {offset}: {e}") from e
        self.dirty = False
        self._set_segments(keep)
        active = self.active
        if self._visible.end_offset > active.next_offset:
            self._visible = Visible(active.next_offset, active, active.size)

    def recover_truncate(self, offset: int) -> None:
        """Truncation during recovery, before any reader exists."""
        with self.lock:
            self._truncate(offset)
            active = self.active
            self._visible = Visible(active.next_offset, active, active.size)

    def _check_writable(self) -> None:
        if self.failed is not None:
            raise LogStorageError(
                f"{self.tp} refuses writes since {self.failed}; close and reopen the log to "
                "recover it"
            )
        if self.deleted:
            raise UnknownTopicError(f"topic {self.tp.topic!r} was deleted")
        if self.closed:
            raise LogClosedError(f"{self.tp} is closed")

    def _set_segments(self, segments: list[Segment]) -> None:
        self._segments = segments
        self._bases = [s.base_offset for s in segments]

    # -- maintenance (retention, compaction) -----------------------------------------------------

    def closed_segments(self) -> list[Segment]:
        """Segments that take no more appends and hold only visible records."""
        visible_base = self._visible.segment.base_offset
        return [s for s in self._segments[:-1] if s.base_offset < visible_base]

    def delete_segments(self, doomed: Sequence[Segment], reason: str) -> int:
        """Delete the given oldest closed segments; returns how many went (0 if they changed)."""
        with self.lock:
            if self.closed:
                return 0
            closed = self.closed_segments()
            n = len(doomed)
            if (
                n == 0
                or n > len(closed)
                or any(a is not b for a, b in zip(doomed, closed[:n], strict=True))
            ):
                return 0
            for s in doomed:
                s.retire()
                s.delete_files()
            self._set_segments(self._segments[n:])
            with contextlib.suppress(OSError):
                fsync_dir(self.directory)
            self._retire(list(doomed))
        _log.info(
            "deleted %d segment(s) of %s up to offset %d: %s", n, self.tp, self.start_offset, reason
        )
        return n

    def replace_segment(
        self, old: Segment, new: Segment | None, *, before_swap: Callable[[], None]
    ) -> bool:
        """Swap a compacted copy in for ``old`` (None: drop it); False if ``old`` is gone.

        ``before_swap`` moves the files into place; it runs under the lock, after the check.
        """
        with self.lock:
            if self.closed:
                return False
            try:
                i = next(i for i, s in enumerate(self._segments) if s is old)
            except StopIteration:
                return False
            if i == len(self._segments) - 1 or old not in self.closed_segments():
                return False
            if new is None and i == 0:
                return False
            try:
                before_swap()
            except OSError as e:
                self.failed = f"swapping in a compacted segment failed: {e}"
                raise storage_error(e, f"cannot swap a compacted segment into {self.tp}") from e
            segs = list(self._segments)
            if new is None:
                del segs[i]
            else:
                segs[i] = new
            self._set_segments(segs)
            self._retire([old])
            return True

    def _retire(self, segments: list[Segment]) -> None:
        with self._pin_lock:
            self._graveyard.extend(segments)
            if self._readers == 0:
                self._bury()

    def _bury(self) -> None:
        for s in self._graveyard:
            s.close()
        self._graveyard.clear()

    @contextlib.contextmanager
    def pinned(self) -> Iterator[tuple[list[Segment], list[int], Visible]]:
        """A consistent view for reading; segment descriptors stay open until released."""
        with self._pin_lock:
            self._readers += 1
            view = (self._segments, self._bases, self._visible)
        try:
            yield view
        finally:
            with self._pin_lock:
                self._readers -= 1
                if self._readers == 0 and self._graveyard:
                    self._bury()

    # -- reading ------------------------------------------------------------------------------

    def check_offset(self, offset: int) -> None:
        start, end = self.start_offset, self.end_offset
        if offset < start or offset > end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is out of range for {self.tp}: it holds offsets {start} to "
                f"{end} (the end is where the next record will go); reset to earliest or latest",
                start=start,
                end=end,
            )

    def read(self, offset: int, *, max_records: int, max_bytes: int) -> list[LogRecord]:
        """Visible records from ``offset`` on, without waiting; at least one if any is there."""
        topic, partition = self.tp

        def decode(buf: bytes, pos: int, h: BatchHeader, lo: int, hi: int) -> list[LogRecord]:
            records = decode_records(buf, pos, h, topic, partition)
            if records[0].offset < lo or records[-1].offset >= hi:
                records = [r for r in records if lo <= r.offset < hi]
            return records

        parts = self._read(offset, decode, max_records=max_records, max_bytes=max_bytes)
        out = parts[0] if len(parts) == 1 else list(chain.from_iterable(parts))
        return out[:max_records] if len(out) > max_records else out

    def read_block(self, offset: int, *, max_records: int, max_bytes: int) -> list[BlockColumns]:
        """What :meth:`read` returns, as the stored columns of each batch read (no object per
        record); the last part may hold more than ``max_records`` in all (the caller cuts)."""

        def decode(buf: bytes, pos: int, h: BatchHeader, lo: int, hi: int) -> BlockColumns:
            return decode_block(buf, pos, h).between(lo, hi)

        return self._read(offset, decode, max_records=max_records, max_bytes=max_bytes)

    def _read(
        self, offset: int, decode: _Decode[_Part], *, max_records: int, max_bytes: int
    ) -> list[_Part]:
        with self.pinned() as (segments, bases, visible):
            start = bases[0]
            if offset < start or offset > visible.end_offset:
                self.check_offset(offset)
            if offset >= visible.end_offset:
                return []
            i = max(bisect_right(bases, offset) - 1, 0)
            while i < len(segments):
                seg = segments[i]
                if seg.base_offset >= visible.end_offset:
                    return []
                if seg is visible.segment:
                    limit = visible.position
                elif seg.base_offset < visible.segment.base_offset:
                    limit = seg.size
                else:
                    return []
                parts = self._read_segment(
                    seg,
                    offset,
                    limit,
                    visible.end_offset,
                    decode,
                    max_records=max_records,
                    max_bytes=max_bytes,
                )
                if parts:
                    return parts
                i += 1
            return []

    def _read_segment(
        self,
        seg: Segment,
        offset: int,
        limit: int,
        end: int,
        decode: _Decode[_Part],
        *,
        max_records: int,
        max_bytes: int,
    ) -> list[_Part]:
        topic, partition = self.tp
        try:
            pos, h = seg.locate(offset, limit)
            if h is None:
                return []
            if pos + h.size > limit:
                raise SegmentError(
                    f"{seg.path}: batch at byte {pos} runs past the segment's end",
                    offset=h.base_offset,
                    position=pos,
                )
            return self._read_batches(
                seg, pos, h.size, offset, limit, end, decode, max_records=max_records,
                max_bytes=max_bytes,
            )
        except SegmentError as e:
            raise CorruptLogError(
                f"{self.tp} is corrupt at offset {e.offset}: {e}. The segment file was damaged "
                "after it was written; restore it from a backup or delete the partition's "
                "files from this offset on",
                topic=topic,
                partition=partition,
                offset=e.offset,
            ) from None
        except FileNotFoundError as e:  # retention deleted it while we were on our way
            self.check_offset(offset)
            raise storage_error(e, f"cannot read {self.tp} in {self.directory}") from e
        except OSError as e:
            raise storage_error(e, f"cannot read {self.tp} in {self.directory}") from e

    def _read_batches(
        self,
        seg: Segment,
        pos: int,
        first_size: int,
        offset: int,
        limit: int,
        end: int,
        decode: _Decode[_Part],
        *,
        max_records: int,
        max_bytes: int,
    ) -> list[_Part]:
        """Decode whole batches from byte ``pos`` on, in chunks of at most ``_READ_CHUNK`` (so
        a small read does not fetch ``max_bytes``); the first batch is read whatever its size.
        Each batch is one part (``decode`` keeps its records in [offset, end)), empty parts
        left out."""
        out: list[_Part] = []
        count = 0
        budget = max_bytes
        need = first_size  # bytes of the batch that starts the next chunk, when known
        expected = offset  # where a damaged batch would have started, for the error
        while pos < limit:
            if pos + need > limit:
                raise SegmentError(
                    f"{seg.path}: batch at byte {pos} runs past the segment's end",
                    offset=expected,
                    position=pos,
                )
            buf = seg.read_at(pos, min(limit - pos, max(min(budget, _READ_CHUNK), need)))
            p = 0
            need = HEADER_SIZE
            while p + HEADER_SIZE <= len(buf):
                try:
                    h = read_header(buf, p)
                    if count and h.size > budget:
                        return out
                    if p + h.size > len(buf):
                        need = h.size
                        break
                    validate(buf, p)
                    part = decode(buf, p, h, offset, end)
                except BatchError as e:
                    raise SegmentError(
                        f"{seg.path} byte {pos + p}: {e}", offset=expected, position=pos + p
                    ) from None
                if len(part):
                    out.append(part)
                    count += len(part)
                budget -= h.size
                p += h.size
                expected = h.next_offset
                if count >= max_records or budget <= 0:
                    return out
            pos += p
        return out

    def offset_for_time(self, timestamp_ms: int) -> int:
        """The first visible offset whose record's timestamp is >= ``timestamp_ms``, or the end.

        Skips closed segments whose largest timestamp is older, then starts at the time
        index entry just before the target and scans forward.
        """
        with self.pinned() as (segments, _bases, visible):
            for seg in segments:
                if seg.base_offset >= visible.end_offset:
                    break
                closed = seg.base_offset < visible.segment.base_offset
                if closed and seg.max_timestamp < timestamp_ms:
                    continue
                seg.ensure_indexes()
                offset = seg.base_offset + (seg.time_index.before(timestamp_ms) or 0)
                while offset < visible.end_offset:
                    records = self.read(offset, max_records=10_000, max_bytes=1 << 20)
                    if not records:
                        break
                    for r in records:
                        if r.timestamp_ms >= timestamp_ms:
                            return r.offset
                    offset = records[-1].offset + 1
                break
            return visible.end_offset

    def wait(self, waiter: Waiter) -> None:
        self.waiters.add(waiter)

    def unwait(self, waiter: Waiter) -> None:
        self.waiters.discard(waiter)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Flush and close the files; wake readers (they see :attr:`closed`)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            try:
                if self.failed is None and self.config.writable:
                    self.active.flush()
                    self.active.flush_indexes()
            finally:
                with self._pin_lock:
                    self._graveyard.extend(self._segments)
                    if self._readers == 0:
                        self._bury()
                self.waiters.fire_all()
