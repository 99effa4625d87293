"""One segment: a ``.log`` file of record batches, with its lazily loaded indexes.

The file starts with an 8-byte header (``CHLG``, format version byte 2 — 1 in logs written
before self-committing batches existed, still read —, 3 zero bytes) and then holds whole
batches back to back (``log/batch.py``, ``log/FORMAT.md``). Byte positions
are u32 in the indexes, so a segment stays below 2 GiB.

:attr:`Segment.size` is the end of the segment's *valid* bytes: after a scan it stops before
a torn or corrupt tail, so that readers never go past it.

Thread safety: appends, truncation, sealing, scans and recovery must be serialised by the
caller (the partition's lock). Reads (:meth:`locate`, :meth:`read_at`) may run concurrently
with them and with each other: they use ``pread`` and look at index arrays that are replaced,
not mutated in place, by a truncation. Loading the indexes of a closed segment on first use
is guarded by the segment's own lock.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from log import files
from log.batch import (
    ATTR_CHECKPOINT,
    ATTR_TRANSACTIONAL,
    HEADER_SIZE,
    BatchError,
    BatchHeader,
    EncodedBatch,
    read_checkpoint,
    read_header,
    validate,
)
from log.index import CorruptIndexError, OffsetIndex, TimeIndex

__all__ = [
    "MAX_SEGMENT_BYTES",
    "SEGMENT_HEADER",
    "SEGMENT_VERSION",
    "LastBatch",
    "ScanResult",
    "Segment",
    "SegmentError",
    "SegmentOptions",
]

_log = logging.getLogger(__name__)

# 2: batches may commit themselves (ATTR_CHECKPOINT). A version 1 segment is read as it is;
# the active one is upgraded in place when a writer opens it (:meth:`Segment.upgrade`).
SEGMENT_VERSION = 2
SEGMENT_HEADER = b"CHLG" + bytes([SEGMENT_VERSION, 0, 0, 0])
_READABLE_HEADERS = frozenset({b"CHLG\x01\x00\x00\x00", SEGMENT_HEADER})
MAX_SEGMENT_BYTES = 2**31 - 1
_SCAN_CHUNK = 4 * 1024 * 1024
_LOCATE_CHUNK = 64 * 1024


class SegmentError(Exception):
    """A segment's bytes are not what they must be. Carries where (``offset``, ``position``)."""

    def __init__(self, message: str, *, offset: int, position: int) -> None:
        super().__init__(message)
        self.offset = offset
        self.position = position


@dataclass(frozen=True)
class SegmentOptions:
    index_interval_bytes: int = 4096
    dense: bool = True  # offsets have no gaps (False for compacted topics)
    writable: bool = True  # False: a read-only view; never changes a file


class LastBatch(NamedTuple):
    """Where the last batch of a segment is and whose transaction it belongs to."""

    position: int
    base_offset: int
    next_offset: int
    transactional: bool
    producer_id: int
    producer_seq: int


class ScanResult(NamedTuple):
    """What a scan of a segment found."""

    valid_bytes: int  # the valid prefix of the file, header included
    next_offset: int
    error: str | None  # why the scan stopped before the end of the file, if it did


class Segment:
    """A segment file plus its offset and time index. See the module doc for threading."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        fd: int | None,
        options: SegmentOptions,
        *,
        size: int,
        next_offset: int,
        max_timestamp: int,
        indexes_loaded: bool,
    ) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self._fd = -1 if fd is None else fd  # closed segments open their file on first use
        self._closed = False
        self.retired = False  # replaced or deleted: its index files belong to no one now
        self.options = options
        self.size = size
        self.next_offset = next_offset
        self.max_timestamp = max_timestamp
        self.created_ms: int | None = None  # when the first batch came (for rolling by age)
        self.offset_index = OffsetIndex(files.index_file(directory, base_offset))
        self.time_index = TimeIndex(files.time_index_file(directory, base_offset))
        self.corrupt_at: SegmentError | None = None  # first bad bytes found in a closed segment
        self.last_batch: LastBatch | None = None  # known once written, scanned or checked
        # producer id -> (position, sequence number) of its last self-committing batch seen
        # here (appended, or scanned by recovery): recovery adopts the checkpoints it carries
        self.self_commits: dict[int, tuple[int, int]] = {}
        self._indexes_loaded = indexes_loaded
        self._index_lock = threading.Lock()
        self._fd_lock = threading.Lock()
        self._bytes_since_index = 0
        self._max_ts_rel_offset = 0

    def __repr__(self) -> str:
        return f"Segment({self.path}, size={self.size}, next_offset={self.next_offset})"

    @property
    def path(self) -> Path:
        return files.log_file(self.directory, self.base_offset)

    @property
    def fd(self) -> int:
        """The segment file's descriptor, opened on first use: a log with many old segments
        holds descriptors only for those written or read since it was opened."""
        fd = self._fd
        if fd >= 0:
            return fd
        with self._fd_lock:
            if self._closed:
                raise OSError(errno.EBADF, f"{self.path} is closed")
            if self._fd < 0:
                self._fd = os.open(self.path, _open_flags(self.options))
            return self._fd

    @property
    def dense(self) -> bool:
        return self.options.dense

    @property
    def empty(self) -> bool:
        return self.size <= len(SEGMENT_HEADER)

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, base_offset: int, options: SegmentOptions) -> Segment:
        """Create an empty segment file (the caller fsyncs the directory)."""
        path = files.log_file(directory, base_offset)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, SEGMENT_HEADER)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return cls(
            directory,
            base_offset,
            fd,
            options,
            size=len(SEGMENT_HEADER),
            next_offset=base_offset,
            max_timestamp=-1,
            indexes_loaded=True,
        )

    @classmethod
    def open_closed(
        cls, directory: Path, base_offset: int, next_offset: int, options: SegmentOptions
    ) -> Segment:
        """Open a sealed segment without reading it: its indexes load on first use.

        ``next_offset`` is the base offset of the segment after it.
        """
        size = os.stat(files.log_file(directory, base_offset)).st_size
        ts = TimeIndex.read_last(files.time_index_file(directory, base_offset))
        seg = cls(
            directory,
            base_offset,
            None,
            options,
            size=size,
            next_offset=next_offset,
            max_timestamp=-1 if ts is None else ts,
            indexes_loaded=False,
        )
        if ts is None and not seg.empty:
            seg.ensure_indexes()  # the largest timestamp is needed for retention
        return seg

    @classmethod
    def open_for_scan(cls, directory: Path, base_offset: int, options: SegmentOptions) -> Segment:
        """Open a segment whose state :meth:`scan` or :meth:`recover` will establish."""
        fd = os.open(files.log_file(directory, base_offset), _open_flags(options))
        return cls(
            directory,
            base_offset,
            fd,
            options,
            size=len(SEGMENT_HEADER),
            next_offset=base_offset,
            max_timestamp=-1,
            indexes_loaded=True,
        )

    # -- writing (caller holds the partition lock) --------------------------------------------

    def append(self, batch: EncodedBatch, base_offset: int, now_ms: int) -> int:
        """Write a batch whose base offset is already set; return its position.

        On failure the file is cut back to where it was, so no partial batch remains.
        """
        pos = self.size
        n = batch.size
        try:
            written = os.pwritev(self.fd, [batch.header, *batch.body], pos)
            if written != n:
                raise OSError(errno.ENOSPC, f"short write: {written} of {n} bytes")
        except OSError:
            self._cut(pos)
            raise
        self.size = pos + n
        if self.created_ms is None:
            self.created_ms = now_ms
        self._note_batch(
            pos,
            n,
            base_offset,
            batch.last_offset_delta,
            batch.max_timestamp,
            attributes=batch.attributes,
            producer_id=batch.producer_id,
            producer_seq=batch.producer_seq,
        )
        return pos

    def _cut(self, size: int) -> None:
        try:
            os.ftruncate(self.fd, size)
        except OSError as e:
            _log.error(
                "could not cut %s back to %d bytes after a failed write: %s", self.path, size, e
            )
            raise

    def _note_batch(
        self,
        pos: int,
        nbytes: int,
        base: int,
        last_delta: int,
        max_ts: int,
        *,
        attributes: int,
        producer_id: int,
        producer_seq: int,
    ) -> None:
        """Update indexes and in-memory stats for a batch just appended or scanned."""
        rel = base - self.base_offset
        if self.created_ms is None:
            self.created_ms = max_ts
        if max_ts > self.max_timestamp:
            self.max_timestamp = max_ts
            self._max_ts_rel_offset = rel
        if self._bytes_since_index >= self.options.index_interval_bytes:
            self.offset_index.append(rel, pos)
            last = self.time_index.last()
            if last is None or self.max_timestamp > last[0]:
                self.time_index.append(self.max_timestamp, rel)
            self._bytes_since_index = 0
        self._bytes_since_index += nbytes
        self.next_offset = base + last_delta + 1
        if attributes & ATTR_CHECKPOINT:
            self.self_commits[producer_id] = (pos, producer_seq)
        self.last_batch = LastBatch(
            pos,
            base,
            self.next_offset,
            bool(attributes & ATTR_TRANSACTIONAL),
            producer_id,
            producer_seq,
        )

    def flush(self) -> None:
        """Make the appended bytes durable (the file size is data for fdatasync)."""
        os.fdatasync(self.fd)

    def seal(self) -> None:
        """Finish a segment that takes no more appends: final time entry, all durable."""
        self._add_final_time_entry()
        os.fdatasync(self.fd)
        self.flush_indexes()

    def unload_indexes(self) -> None:
        """Free a sealed segment's in-memory indexes; they load again on the next read, so
        memory does not grow with the number of segments written."""
        with self._index_lock:
            self.offset_index = OffsetIndex(self.offset_index.path)
            self.time_index = TimeIndex(self.time_index.path)
            self._indexes_loaded = False

    def flush_indexes(self, *, fsync: bool = True) -> None:
        """Write the indexes out. Best effort: they are rebuilt when missing or damaged, so a
        full disk must not fail an append or keep the log from opening because of them."""
        if not self.options.writable or self.retired:
            return
        try:
            self.offset_index.flush(fsync=fsync)
            self.time_index.flush(fsync=fsync)
        except OSError as e:
            _log.warning(
                "could not write the indexes of %s (rebuilt when needed): %s", self.path, e
            )

    def _add_final_time_entry(self) -> None:
        """Make the time index's last entry hold the segment's largest timestamp."""
        last = self.time_index.last()
        if self.max_timestamp >= 0 and (last is None or self.max_timestamp > last[0]):
            rel = max(self._max_ts_rel_offset, -1 if last is None else last[1] + 1)
            self.time_index.append(self.max_timestamp, rel)

    def truncate_to(self, offset: int) -> None:
        """Remove every batch at or after ``offset``, which must start a batch."""
        if offset >= self.next_offset:
            return
        self.ensure_indexes()
        pos, h = self.locate(offset, self.size)
        if h is None or h.base_offset != offset:
            raise SegmentError(
                f"offset {offset} does not start a batch in {self.path}",
                offset=offset,
                position=pos,
            )
        os.ftruncate(self.fd, pos)
        self.offset_index.truncate_to_offset(offset - self.base_offset)
        self.time_index.truncate_to_offset(offset - self.base_offset)
        self._restat(pos)

    def _restat(self, end: int) -> None:
        """Recompute the in-memory stats from the batch headers before byte ``end``."""
        self.max_timestamp = -1
        self._max_ts_rel_offset = 0
        self.last_batch = None
        self.self_commits = {}
        self.next_offset = self.base_offset
        entry = self.offset_index.last()
        indexed_from = entry[1] if entry is not None else len(SEGMENT_HEADER)
        self._bytes_since_index = 0
        for pos, h in self.iter_batches(len(SEGMENT_HEADER), end):
            if h.max_timestamp > self.max_timestamp:
                self.max_timestamp = h.max_timestamp
                self._max_ts_rel_offset = h.base_offset - self.base_offset
            if pos >= indexed_from:
                self._bytes_since_index += h.size
            self.next_offset = h.next_offset
            if h.self_committed:
                self.self_commits[h.producer_id] = (pos, h.producer_seq)
            self.last_batch = LastBatch(
                pos,
                h.base_offset,
                h.next_offset,
                h.transactional,
                h.producer_id,
                h.producer_seq,
            )
        self.size = end
        if self.last_batch is None:
            self.created_ms = None

    # -- reading (any thread) -----------------------------------------------------------------

    def self_commit_at(self, position: int) -> tuple[BatchHeader, bytes]:
        """The header and checkpoint block of the self-committing batch at ``position`` (one
        of :attr:`self_commits`); BatchError or SegmentError if it is not there (any more)."""
        h = read_header(self.read_at(position, HEADER_SIZE))
        return h, read_checkpoint(self.read_at(position, h.size), 0, h)

    def read_at(self, position: int, nbytes: int) -> bytes:
        data = os.pread(self.fd, nbytes, position)
        if len(data) != nbytes:
            raise SegmentError(
                f"{self.path} ends at byte {position + len(data)}, expected {position + nbytes}",
                offset=-1,
                position=position,
            )
        return data

    def ensure_indexes(self) -> None:
        """Load a closed segment's indexes (rebuilding them if they fail the sanity check)
        and check its tail, so that a cut-off or damaged end is reported, not skipped."""
        if self._indexes_loaded:
            return
        with self._index_lock:
            if self._indexes_loaded:
                return
            expected_next = self.next_offset
            try:
                self.offset_index.load()
                self.time_index.load()
                self.offset_index.check(self.size)
                self.time_index.check(expected_next - self.base_offset)
                self._check_tail()
            except CorruptIndexError as e:
                _log.warning("rebuilding the indexes of %s: %s", self.path, e)
                self.rebuild_indexes()
            actual_next = self.last_batch.next_offset if self.last_batch else self.base_offset
            self.next_offset = expected_next
            if self.corrupt_at is None and self.dense and actual_next != expected_next:
                self.corrupt_at = SegmentError(
                    f"{self.path} ends at offset {actual_next} but the next segment starts at "
                    f"{expected_next}: the file was cut short",
                    offset=actual_next,
                    position=self.size,
                )
            self._indexes_loaded = True

    def _check_tail(self) -> None:
        """Validate the batches after the last offset index entry (a few KiB)."""
        header = os.pread(self.fd, len(SEGMENT_HEADER), 0)
        if header not in _READABLE_HEADERS:
            self.corrupt_at = SegmentError(
                f"{self.path} has a bad file header {header!r}",
                offset=self.base_offset,
                position=0,
            )
            return
        entry = self.offset_index.last()
        pos = entry[1] if entry is not None else len(SEGMENT_HEADER)
        data = os.pread(self.fd, self.size - pos, pos)
        p = 0
        try:
            while p < len(data):
                h = validate(data, p)
                self.last_batch = LastBatch(
                    pos + p,
                    h.base_offset,
                    h.next_offset,
                    h.transactional,
                    h.producer_id,
                    h.producer_seq,
                )
                p += h.size
        except BatchError as e:
            if entry is not None and p == 0:
                raise CorruptIndexError(f"its last entry points at a bad batch: {e}") from None
            at = self.last_batch.next_offset if self.last_batch else self.base_offset
            self.corrupt_at = SegmentError(
                f"{self.path} byte {pos + p}: {e}", offset=at, position=pos + p
            )
            self.size = pos + p

    def rebuild_indexes(self) -> None:
        """Rebuild both indexes by scanning the segment; records a corruption found."""
        self.offset_index = OffsetIndex(self.offset_index.path)
        self.time_index = TimeIndex(self.time_index.path)
        result = self.scan()
        if result.error is not None:
            self.corrupt_at = SegmentError(
                f"{self.path} {result.error}",
                offset=result.next_offset,
                position=result.valid_bytes,
            )
        self._add_final_time_entry()
        self.flush_indexes()

    def locate(self, offset: int, limit: int) -> tuple[int, BatchHeader | None]:
        """Position and header of the first batch below byte ``limit`` that holds ``offset``
        or a later one; (limit, None) when there is none."""
        self.ensure_indexes()
        entry = self.offset_index.lookup(offset - self.base_offset)
        pos = entry[1] if entry is not None else len(SEGMENT_HEADER)
        buf, buf_pos = b"", pos
        while pos < limit:
            if pos + HEADER_SIZE > buf_pos + len(buf):
                buf, buf_pos = os.pread(self.fd, min(_LOCATE_CHUNK, limit - pos), pos), pos
            try:
                h = read_header(buf, pos - buf_pos)
            except BatchError as e:
                raise SegmentError(
                    f"{self.path} byte {pos}: {e}", offset=offset, position=pos
                ) from None
            if h.next_offset > offset:
                if self.corrupt_at is not None and pos >= self.corrupt_at.position:
                    raise self.corrupt_at
                return pos, h
            pos += h.size
        if self.corrupt_at is not None:
            raise self.corrupt_at
        return limit, None

    def iter_batches(self, start: int, end: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of the batches in ``[start, end)``, read in large chunks."""
        pos = start
        buf, buf_pos = b"", pos
        while pos < end:
            if pos + HEADER_SIZE > buf_pos + len(buf):
                buf, buf_pos = os.pread(self.fd, min(_SCAN_CHUNK, end - pos), pos), pos
            h = read_header(buf, pos - buf_pos)
            yield pos, h
            pos += h.size

    def scan(self) -> ScanResult:
        """Validate every batch (framing, CRC, offsets), rebuilding the in-memory indexes and
        stats; :attr:`size` ends up at the end of the valid prefix. Changes no file."""
        self.offset_index.truncate_entries(0)
        self.time_index.truncate_entries(0)
        self.max_timestamp = -1
        self._max_ts_rel_offset = 0
        self.created_ms = None
        self.last_batch = None
        self.self_commits = {}
        self._bytes_since_index = 0
        self.next_offset = self.base_offset
        header = os.pread(self.fd, len(SEGMENT_HEADER), 0)
        if header not in _READABLE_HEADERS:
            self.size = 0
            return ScanResult(0, self.base_offset, f"bad file header {header!r}")
        return self._scan_range(len(SEGMENT_HEADER), os.fstat(self.fd).st_size)

    def scan_more(self) -> ScanResult:
        """Take in complete, valid batches appended after :attr:`size` (by another process)."""
        return self._scan_range(self.size, os.fstat(self.fd).st_size)

    def _scan_range(self, pos: int, end: int) -> ScanResult:
        buf, buf_pos = b"", pos
        error = None
        while pos < end:
            try:
                if pos + HEADER_SIZE > buf_pos + len(buf):
                    buf, buf_pos = os.pread(self.fd, min(_SCAN_CHUNK, end - pos), pos), pos
                h = read_header(buf, pos - buf_pos)
                if pos + h.size > buf_pos + len(buf):
                    buf, buf_pos = os.pread(self.fd, max(_SCAN_CHUNK, h.size), pos), pos
                validate(buf, pos - buf_pos)
                if h.base_offset < self.next_offset or (
                    self.dense and h.base_offset != self.next_offset
                ):
                    raise BatchError(
                        f"base offset {h.base_offset} does not follow {self.next_offset - 1}"
                    )
            except BatchError as e:
                error = f"byte {pos}: {e}"
                break
            self._note_batch(
                pos,
                h.size,
                h.base_offset,
                h.last_offset_delta,
                h.max_timestamp,
                attributes=h.attributes,
                producer_id=h.producer_id,
                producer_seq=h.producer_seq,
            )
            pos += h.size
        self.size = pos
        return ScanResult(pos, self.next_offset, error)

    def resume(self) -> bool:
        """After a clean shutdown: take the active segment's state from its indexes and the
        few batches after the last index entry, instead of scanning it all. False (state
        unchanged) if anything does not add up; the caller then runs :meth:`recover`."""
        size = os.fstat(self.fd).st_size
        if os.pread(self.fd, len(SEGMENT_HEADER), 0) not in _READABLE_HEADERS:
            return False
        try:
            self.offset_index.load()
            self.time_index.load()
            self.offset_index.check(size)
        except CorruptIndexError:
            self.offset_index = OffsetIndex(self.offset_index.path)
            self.time_index = TimeIndex(self.time_index.path)
            return False
        entry = self.offset_index.last()
        start = len(SEGMENT_HEADER)
        if entry is not None:
            rel, start = entry
            self.next_offset = self.base_offset + rel
        last_time = self.time_index.last()
        if last_time is not None:
            self.max_timestamp, self._max_ts_rel_offset = last_time
        if size > len(SEGMENT_HEADER):
            try:
                first = read_header(os.pread(self.fd, HEADER_SIZE, len(SEGMENT_HEADER)))
            except BatchError:
                return False
            self.created_ms = first.max_timestamp
        result = self._scan_range(start, size)
        if result.error is not None or self.size != size:
            return False
        try:
            self.time_index.check(self.next_offset - self.base_offset)
        except CorruptIndexError:
            return False
        return True

    def unknown_version(self) -> int | None:
        """The format version of a file whose header is ours (``CHLG``) but of a version this
        code does not read (a newer changehub wrote it), else None. Such a file must be
        refused, never scanned: its batches would look torn and be cut (FORMAT.md: readers
        stop at an unknown version)."""
        header = os.pread(self.fd, len(SEGMENT_HEADER), 0)
        ours = len(header) == len(SEGMENT_HEADER) and header[:4] == SEGMENT_HEADER[:4]
        return header[4] if ours and header not in _READABLE_HEADERS else None

    def upgrade(self) -> None:
        """Make a version 1 active segment version 2 (its batches are valid in both), so that
        self-committing batches may follow; one byte rewritten in place and made durable."""
        if os.pread(self.fd, len(SEGMENT_HEADER), 0) != SEGMENT_HEADER:
            os.pwrite(self.fd, SEGMENT_HEADER, 0)
            os.fdatasync(self.fd)

    def recover(self) -> ScanResult:
        """Scan the active segment and cut off a torn or corrupt tail."""
        result = self.scan()
        if result.error is not None:
            if result.valid_bytes < len(SEGMENT_HEADER):
                os.ftruncate(self.fd, 0)
                os.pwrite(self.fd, SEGMENT_HEADER, 0)
                self.size = len(SEGMENT_HEADER)
            else:
                os.ftruncate(self.fd, result.valid_bytes)
            os.fdatasync(self.fd)
        self.flush_indexes(fsync=False)
        return result

    # -- lifecycle ----------------------------------------------------------------------------

    def retire(self) -> None:
        """Take the segment out of service before its files are deleted or replaced: its
        descriptor stays usable for readers who still hold it, but it never writes an index
        file again (waiting for a rebuild in progress to finish)."""
        self.fd  # noqa: B018 - open it now, before the path names another file
        with self._index_lock:
            self.retired = True

    def moved_to(self, directory: Path) -> None:
        """The segment's files were renamed into ``directory`` (descriptors stay valid)."""
        self.directory = directory
        self.offset_index.path = files.index_file(directory, self.base_offset)
        self.time_index.path = files.time_index_file(directory, self.base_offset)

    def close(self) -> None:
        """Close the descriptor (writes nothing: what is written is in the file already)."""
        with self._fd_lock:
            self._closed = True
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def delete_files(self) -> None:
        """Unlink the segment and its indexes (open descriptors keep working until closed)."""
        self.path.unlink(missing_ok=True)
        self.offset_index.delete()
        self.time_index.delete()


def _open_flags(options: SegmentOptions) -> int:
    return os.O_RDWR if options.writable else os.O_RDONLY
