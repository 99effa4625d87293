"""The two sparse indexes of a segment: offset -> file position, and time -> offset.

On-disk format (little-endian; also in ``log/FORMAT.md``). Both files start with an 8-byte
header: 4 magic bytes (``CHIX`` for the offset index, ``CHTI`` for the time index), a
format version byte (1) and 3 zero bytes. Then fixed-size entries:

* offset index, 8 bytes each: ``relative_offset u32 | position u32``. The batch whose base
  offset is ``segment base + relative_offset`` starts at byte ``position`` of the segment.
  An entry is added for the first batch written after every ``index_interval_bytes``.
* time index, 12 bytes each: ``timestamp i64 | relative_offset u32``. Every record in the
  batch at ``relative_offset`` and before it has a timestamp <= ``timestamp``. Entries are
  added with offset index entries when the segment's largest timestamp grew, and once more
  when the segment is closed, so the last entry holds the segment's largest timestamp.

Entries are strictly increasing in both columns. The files are **not checksummed**: they are
derived data, always rebuilt from the segment when missing, when they fail the sanity check
on load, and for the active segment after an unclean shutdown (as Kafka's ``OffsetIndex``).

Not thread-safe: the owning segment serialises writers; readers look up entries that are
never changed in place (a truncation replaces the arrays).
"""

from __future__ import annotations

import operator
import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from itertools import islice
from pathlib import Path

__all__ = [
    "FILE_HEADER_SIZE",
    "INDEX_VERSION",
    "CorruptIndexError",
    "OffsetIndex",
    "TimeIndex",
]

INDEX_VERSION = 1
FILE_HEADER_SIZE = 8
_BIG_ENDIAN = sys.byteorder == "big"


class CorruptIndexError(ValueError):
    """An index file failed its sanity check; the caller rebuilds it from the segment."""


class _SparseIndex:
    """Two parallel, strictly increasing columns ``keys`` -> ``values``, persisted by append."""

    MAGIC: bytes
    KEY_TYPE: str
    VALUE_TYPE: str

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: array[int] = array(self.KEY_TYPE)
        self.values: array[int] = array(self.VALUE_TYPE)
        self._persisted: int | None = 0  # entries already in the file; None: rewrite it

    @classmethod
    def entry_size(cls) -> int:
        return array(cls.KEY_TYPE).itemsize + array(cls.VALUE_TYPE).itemsize

    @classmethod
    def file_header(cls) -> bytes:
        return cls.MAGIC + bytes([INDEX_VERSION, 0, 0, 0])

    def __len__(self) -> int:
        return len(self.keys)

    def append(self, key: int, value: int) -> None:
        if self.keys and (key <= self.keys[-1] or value <= self.values[-1]):
            raise ValueError(
                f"index entries must increase: ({key}, {value}) after "
                f"({self.keys[-1]}, {self.values[-1]}) in {self.path}"
            )
        self.keys.append(key)
        self.values.append(value)

    def last(self) -> tuple[int, int] | None:
        return (self.keys[-1], self.values[-1]) if self.keys else None

    def floor(self, key: int) -> int:
        """Position of the last entry with a key <= ``key``, or -1."""
        return bisect_right(self.keys, key) - 1

    def truncate_entries(self, n: int) -> None:
        """Keep the first ``n`` entries (the file is rewritten on the next flush)."""
        if n < len(self.keys):
            self.keys = self.keys[:n]
            self.values = self.values[:n]
            self._persisted = None

    def _packed(self, start: int) -> bytes:
        """Entries from ``start`` on, interleaved as on disk (strided copies, no entry loop)."""
        ks, vs = self.keys[start:], self.values[start:]
        if _BIG_ENDIAN:
            ks.byteswap()
            vs.byteswap()
        k, v = ks.itemsize, vs.itemsize
        out = bytearray((k + v) * len(ks))
        kb, vb = ks.tobytes(), vs.tobytes()
        for i in range(k):
            out[i :: k + v] = kb[i::k]
        for i in range(v):
            out[k + i :: k + v] = vb[i::v]
        return bytes(out)

    def flush(self, *, fsync: bool) -> None:
        """Write entries not yet in the file (or the whole file after a truncation)."""
        if self._persisted is None or self._persisted == 0 or not self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            data = self.file_header() + self._packed(0)
        elif self._persisted < len(self.keys):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            data = self._packed(self._persisted)
        else:
            if fsync:
                _fsync_path(self.path)
            return
        try:
            os.write(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._persisted = len(self.keys)

    def load(self) -> None:
        """Read the file; CorruptIndexError if it is missing, short, or out of order."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise CorruptIndexError(f"{self.path} is missing") from None
        if data[:FILE_HEADER_SIZE] != self.file_header():
            raise CorruptIndexError(f"{self.path} has an unknown header {data[:8]!r}")
        body = memoryview(data)[FILE_HEADER_SIZE:]
        ks, vs = array(self.KEY_TYPE), array(self.VALUE_TYPE)
        k, v = ks.itemsize, vs.itemsize
        if len(body) % (k + v):
            raise CorruptIndexError(f"{self.path} size is not a multiple of {k + v}")
        n = len(body) // (k + v)
        kcol, vcol = bytearray(k * n), bytearray(v * n)
        for i in range(k):
            kcol[i::k] = body[i :: k + v]
        for i in range(v):
            vcol[i::v] = body[k + i :: k + v]
        ks.frombytes(kcol)
        vs.frombytes(vcol)
        if _BIG_ENDIAN:
            ks.byteswap()
            vs.byteswap()
        for col in (ks, vs):
            if not all(map(operator.lt, col, islice(col, 1, None))):
                raise CorruptIndexError(f"{self.path} entries are not increasing")
        self.keys, self.values = ks, vs
        self._persisted = n

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


class OffsetIndex(_SparseIndex):
    """Relative offset -> byte position of the batch starting there."""

    MAGIC = b"CHIX"
    KEY_TYPE = "I"
    VALUE_TYPE = "I"

    def lookup(self, relative_offset: int) -> tuple[int, int] | None:
        """The entry (relative offset, position) at or before ``relative_offset``."""
        i = self.floor(relative_offset)
        return (self.keys[i], self.values[i]) if i >= 0 else None

    def check(self, segment_size: int) -> None:
        """Raise CorruptIndexError if an entry points past the segment's end."""
        if self.values and self.values[-1] >= segment_size:
            raise CorruptIndexError(
                f"{self.path} points at byte {self.values[-1]} of a {segment_size}-byte segment"
            )

    def truncate_to_offset(self, relative_offset: int) -> None:
        """Drop entries for batches at or after ``relative_offset``."""
        self.truncate_entries(bisect_right(self.keys, relative_offset - 1))


class TimeIndex(_SparseIndex):
    """Largest timestamp so far -> relative offset of the batch where it was reached."""

    MAGIC = b"CHTI"
    KEY_TYPE = "q"
    VALUE_TYPE = "I"

    def before(self, timestamp_ms: int) -> int | None:
        """Relative offset of the last entry whose timestamp is < ``timestamp_ms``."""
        i = bisect_right(self.keys, timestamp_ms - 1) - 1
        return self.values[i] if i >= 0 else None

    def check(self, next_relative_offset: int) -> None:
        if self.values and self.values[-1] >= next_relative_offset:
            raise CorruptIndexError(
                f"{self.path} names offset {self.values[-1]} past the segment's end"
            )

    def truncate_to_offset(self, relative_offset: int) -> None:
        self.truncate_entries(bisect_left(self.values, relative_offset))

    @classmethod
    def read_last(cls, path: Path) -> int | None:
        """The largest timestamp recorded in a closed segment's time index, from its tail."""
        width = cls.entry_size()
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                if size < FILE_HEADER_SIZE + width or (size - FILE_HEADER_SIZE) % width:
                    return None
                f.seek(size - width)
                raw = f.read(width)
        except FileNotFoundError:
            return None
        (ts,) = struct.unpack_from("<q", raw)
        return int(ts)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
