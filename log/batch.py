"""Record batches: the unit the embedded log writes, checksums, indexes and reads.

A batch is a fixed 60-byte header followed by the records stored column by column, so that
encoding and decoding run as a handful of C-level operations per batch (``struct.pack`` of
the lengths, one ``join`` of keys, one of values; ``array`` and slicing to decode) instead
of a Python loop per record — the append path's speed depends on it. The byte layout is
specified in ``log/FORMAT.md``; in short (little-endian)::

    base_offset i64 | length u32 | crc u32 | magic u8 | attributes u8 | reserved u16
    | last_offset_delta i32 | record_count i32 | first_timestamp i64 | max_timestamp i64
    | producer_id i64 | producer_seq i64 | columns…

``length`` counts the bytes after itself; ``crc`` is CRC32C of everything after the crc
field. Like Kafka's, the CRC leaves out the base offset so that a batch can be encoded
before the partition lock assigns its offset; recovery checks base offsets for continuity
instead.

Pure functions, no state: thread-safe.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from functools import partial
from itertools import accumulate, islice, repeat
from typing import Any, NamedTuple, cast

import crc32c

from log.api import LogRecord, Record

__all__ = [
    "ATTR_CHECKPOINT",
    "ATTR_HEADERS",
    "ATTR_OFFSET_DELTAS",
    "ATTR_TIMESTAMPS",
    "ATTR_TRANSACTIONAL",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "BatchError",
    "BatchHeader",
    "BlockColumns",
    "EncodedBatch",
    "RecordColumns",
    "decode_block",
    "decode_columns",
    "decode_records",
    "encode",
    "encode_columns",
    "iter_headers",
    "read_checkpoint",
    "read_header",
    "set_base_offset",
    "validate",
]

MAGIC = 1

# attribute bits
ATTR_TRANSACTIONAL = 0x01  # written by a checkpointed append; visible once its checkpoint is
ATTR_OFFSET_DELTAS = 0x02  # offsets are not dense (a compacted batch): a delta column follows
ATTR_TIMESTAMPS = 0x04  # records differ in timestamp: a timestamp column follows
ATTR_HEADERS = 0x08  # some record has headers: a header column follows
# The batch commits itself: it carries its source's checkpoint in a block right after the
# header, so one fsync makes records and checkpoint durable together (a checkpointed append
# that wrote a single partition). Committed as soon as it is whole on disk: not transactional.
ATTR_CHECKPOINT = 0x10
_KNOWN_ATTRS = (
    ATTR_TRANSACTIONAL | ATTR_OFFSET_DELTAS | ATTR_TIMESTAMPS | ATTR_HEADERS | ATTR_CHECKPOINT
)

HEADER = struct.Struct("<qIIBBHiiqqqq")
HEADER_SIZE = HEADER.size  # 60
_LENGTH_AND_BASE = 12  # bytes before/including the length field that ``length`` excludes
_CRC_START = 16  # the CRC covers bytes from here to the end of the batch
_BASE = struct.Struct("<q")
_CRC = struct.Struct("<I")
_CRC_POS = 12
_HEADER_COUNT = struct.Struct("<H")
_HEADER_NAME = struct.Struct("<H")
_HEADER_VALUE = struct.Struct("<i")
_CHECKPOINT_LEN = struct.Struct("<I")
_BIG_ENDIAN = sys.byteorder == "big"
_make_record = partial(tuple.__new__, LogRecord)


class BatchError(ValueError):
    """Bytes that are not a valid batch. Callers turn it into CorruptLogError or truncate."""


class BatchHeader(NamedTuple):
    base_offset: int
    length: int
    crc: int
    magic: int
    attributes: int
    reserved: int
    last_offset_delta: int
    record_count: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_seq: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies on disk."""
        return self.length + _LENGTH_AND_BASE

    @property
    def next_offset(self) -> int:
        """The offset right after this batch's last record."""
        return self.base_offset + self.last_offset_delta + 1

    @property
    def transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def self_committed(self) -> bool:
        return bool(self.attributes & ATTR_CHECKPOINT)


class EncodedBatch(NamedTuple):
    """A batch ready to write: the 60-byte header (its base offset is set under the partition
    lock) and the column buffers after it, written together with one ``pwritev`` so that the
    payload is never copied into one buffer."""

    header: bytearray
    body: list[bytes]
    size: int
    record_count: int
    first_timestamp: int
    max_timestamp: int
    last_offset_delta: int
    attributes: int
    producer_id: int
    producer_seq: int

    @property
    def transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    def to_bytes(self) -> bytes:
        return bytes(self.header) + b"".join(self.body)


class RecordColumns(Sequence[Record]):
    """Records handed over already laid out as a batch's key and value columns: the lengths
    as little-endian i32 (-1: a null key), then the bytes concatenated, all with one
    timestamp (0: "now") and no headers. A producer that builds them in bulk (the Postgres
    snapshot's worker process) passes them through the hub, and :func:`encode` frames them
    with no Python object per record. Indexing and iteration make the records, for a backend
    that takes them one by one. Immutable: thread-safe."""

    __slots__ = ("_records", "key_lengths", "keys", "timestamp_ms", "value_lengths", "values")

    def __init__(
        self,
        key_lengths: bytes,
        keys: bytes,
        value_lengths: bytes,
        values: bytes,
        timestamp_ms: int,
    ) -> None:
        if len(key_lengths) != len(value_lengths) or len(value_lengths) % 4:
            raise ValueError("key and value length columns must hold one i32 per record")
        self.key_lengths, self.keys = key_lengths, keys
        self.value_lengths, self.values = value_lengths, values
        self.timestamp_ms = timestamp_ms
        self._records: list[Record] | None = None

    def __len__(self) -> int:
        return len(self.value_lengths) // 4

    def __getitem__(self, i: Any) -> Any:
        return self.records()[i]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def records(self) -> list[Record]:
        if self._records is None:
            n = len(self)
            keys, _ = _split(self.keys, 0, _array("i", self.key_lengths, 0, n)[0])
            values, _ = _split(self.values, 0, _array("i", self.value_lengths, 0, n)[0])
            made = partial(tuple.__new__, Record)
            self._records = list(
                map(made, zip(keys, values, repeat(self.timestamp_ms), repeat(())))
            )
        return self._records


def _lengths(items: Sequence[bytes | None]) -> tuple[bytes, Sequence[bytes]]:
    """The length column (-1 for None) as little-endian i32 bytes, and the non-null items.

    ``struct.pack`` over ``map(len, …)`` runs in C; a None makes ``len`` raise, and only
    then are the items looked at one by one.
    """
    fmt = f"<{len(items)}i"
    present = cast("Sequence[bytes]", items)
    try:
        return struct.pack(fmt, *map(len, present)), present
    except TypeError:
        lens = [-1 if x is None else len(x) for x in items]
        return struct.pack(fmt, *lens), [x for x in items if x is not None]


def _col(typecode: str, values: Sequence[int]) -> bytes:
    """A column of ints as little-endian bytes (``i``: i32, ``q``: i64)."""
    return struct.pack(f"<{len(values)}{typecode}", *values)


def _encode_headers(headers: Sequence[tuple[tuple[str, bytes], ...]]) -> tuple[bytes, bytes]:
    blocks = []
    for hs in headers:
        parts = [_HEADER_COUNT.pack(len(hs))]
        for name, value in hs:
            raw = name.encode()
            parts += [_HEADER_NAME.pack(len(raw)), raw, _HEADER_VALUE.pack(len(value)), value]
        blocks.append(b"".join(parts))
    return _col("i", list(map(len, blocks))), b"".join(blocks)


def encode_columns(
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    timestamps: Sequence[int],
    headers: Sequence[tuple[tuple[str, bytes], ...]] | None,
    *,
    offset_deltas: Sequence[int] | None = None,
    attributes: int = 0,
    producer_id: int = 0,
    producer_seq: int = 0,
    checkpoint: bytes | None = None,
    laid_out: RecordColumns | None = None,
) -> EncodedBatch:
    """Encode records given as columns. ``headers`` None means no record has any;
    ``checkpoint`` (the commit of a single-partition checkpointed append) makes the batch
    commit itself (:data:`ATTR_CHECKPOINT`); ``laid_out`` gives the key and value columns
    ready-made (``keys`` and ``values`` are then only counted)."""
    n = len(keys)
    if n == 0:
        raise ValueError("a batch needs at least one record")
    first_ts = max_ts = timestamps[0]
    attrs = attributes & ATTR_TRANSACTIONAL
    parts: list[bytes] = []
    if checkpoint is not None:
        attrs = ATTR_CHECKPOINT  # committed by itself, so never transactional
        parts += [_CHECKPOINT_LEN.pack(len(checkpoint)), checkpoint]
    if offset_deltas is not None:
        attrs |= ATTR_OFFSET_DELTAS
        parts.append(_col("i", offset_deltas))
        last_delta = offset_deltas[-1]
    else:
        last_delta = n - 1
    if timestamps.count(first_ts) != n:
        attrs |= ATTR_TIMESTAMPS
        max_ts = max(timestamps)
        parts.append(_col("q", timestamps))
    if laid_out is None:
        klens, kdata = _lengths(keys)
        vlens, vdata = _lengths(values)
        kblob, vblob = b"".join(kdata), b"".join(vdata)
    else:
        klens, kblob = laid_out.key_lengths, laid_out.keys
        vlens, vblob = laid_out.value_lengths, laid_out.values
    parts += [klens, vlens]
    if headers is not None:
        attrs |= ATTR_HEADERS
        hlens, hblob = _encode_headers(headers)
        parts += [hlens, hblob]
    parts += [kblob, vblob]
    size = HEADER_SIZE + sum(map(len, parts))
    header = bytearray(HEADER_SIZE)
    HEADER.pack_into(
        header, 0, 0, size - _LENGTH_AND_BASE, 0, MAGIC, attrs, 0, last_delta, n,
        first_ts, max_ts, producer_id, producer_seq,
    )  # fmt: skip
    crc = crc32c.crc32c(memoryview(header)[_CRC_START:])
    for part in parts:
        crc = crc32c.crc32c(part, crc)
    _CRC.pack_into(header, _CRC_POS, crc)
    return EncodedBatch(
        header, parts, size, n, first_ts, max_ts, last_delta, attrs, producer_id, producer_seq
    )


def encode(
    records: Sequence[Record],
    now_ms: int,
    *,
    attributes: int = 0,
    producer_id: int = 0,
    producer_seq: int = 0,
    checkpoint: bytes | None = None,
) -> EncodedBatch:
    """Encode records appended by a writer; a timestamp of 0 becomes ``now_ms``."""
    if not records:
        raise ValueError("a batch needs at least one record")
    if isinstance(records, RecordColumns):
        n = len(records)
        counted: list[bytes | None] = [None] * n  # the columns come laid out
        return encode_columns(
            counted,
            counted,
            [records.timestamp_ms or now_ms] * n,
            None,
            attributes=attributes,
            producer_id=producer_id,
            producer_seq=producer_seq,
            checkpoint=checkpoint,
            laid_out=records,
        )
    keys, values, timestamps, headers = zip(*records, strict=True)
    n = len(keys)
    zeros = timestamps.count(0)
    if zeros == n:
        timestamps = (now_ms,) * n
    elif zeros:
        timestamps = tuple(t or now_ms for t in timestamps)
    return encode_columns(
        keys,
        values,
        timestamps,
        None if headers.count(()) == n else headers,
        attributes=attributes,
        producer_id=producer_id,
        producer_seq=producer_seq,
        checkpoint=checkpoint,
    )


def set_base_offset(batch: EncodedBatch, base_offset: int) -> None:
    _BASE.pack_into(batch.header, 0, base_offset)


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """The header at ``pos``; checks framing (not the CRC). Raises BatchError."""
    if len(buf) - pos < HEADER_SIZE:
        raise BatchError(f"{len(buf) - pos} bytes left, a batch header needs {HEADER_SIZE}")
    h = BatchHeader._make(HEADER.unpack_from(buf, pos))
    if h.magic != MAGIC:
        raise BatchError(f"unknown batch format version {h.magic} (this build reads {MAGIC})")
    if h.length < HEADER_SIZE - _LENGTH_AND_BASE or h.record_count <= 0 or h.last_offset_delta < 0:
        raise BatchError(f"impossible batch header {h}")
    if h.attributes & ~_KNOWN_ATTRS:
        raise BatchError(f"unknown batch attributes {h.attributes:#x}")
    return h


def validate(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """The header at ``pos`` after checking framing, completeness and CRC."""
    h = read_header(buf, pos)
    end = pos + h.size
    if end > len(buf):
        raise BatchError(f"batch of {h.size} bytes is cut off after {len(buf) - pos}")
    crc = crc32c.crc32c(memoryview(buf)[pos + _CRC_START : end])
    if crc != h.crc:
        raise BatchError(f"CRC32C mismatch: stored {h.crc:#010x}, computed {crc:#010x}")
    return h


def iter_headers(buf: bytes | memoryview, pos: int, end: int) -> Iterator[tuple[int, BatchHeader]]:
    """(position, header) of each complete batch in ``buf[pos:end]``, framing checked only."""
    while pos < end:
        h = read_header(buf, pos)
        if pos + h.size > end:
            return
        yield pos, h
        pos += h.size


def _array(typecode: str, buf: bytes, pos: int, n: int) -> tuple[array[int], int]:
    a = array(typecode)
    end = pos + n * a.itemsize
    a.frombytes(buf[pos:end])
    if _BIG_ENDIAN:
        a.byteswap()
    return a, end


def _split(buf: bytes, pos: int, lens: array[int]) -> tuple[list[bytes | None], int]:
    """Slice consecutive items of the given lengths out of ``buf`` (-1: None)."""
    if -1 in lens:
        out: list[bytes | None] = []
        for n in lens:
            if n < 0:
                out.append(None)
            else:
                out.append(buf[pos : pos + n])
                pos += n
        return out, pos
    ends = list(accumulate(lens, initial=pos))
    return list(map(buf.__getitem__, map(slice, ends, islice(ends, 1, None)))), ends[-1]


def _decode_headers(buf: bytes, pos: int, lens: array[int]) -> list[tuple[tuple[str, bytes], ...]]:
    out = []
    for n in lens:
        end = pos + n
        (count,) = _HEADER_COUNT.unpack_from(buf, pos)
        pos += 2
        hs = []
        for _ in range(count):
            (nlen,) = _HEADER_NAME.unpack_from(buf, pos)
            name = buf[pos + 2 : pos + 2 + nlen].decode()
            pos += 2 + nlen
            (vlen,) = _HEADER_VALUE.unpack_from(buf, pos)
            hs.append((name, buf[pos + 4 : pos + 4 + vlen]))
            pos += 4 + vlen
        if pos != end:
            raise BatchError("header block length does not match its contents")
        out.append(tuple(hs))
    return out


def read_checkpoint(buf: bytes | bytearray | memoryview, pos: int, h: BatchHeader) -> bytes:
    """The checkpoint block of the (validated) self-committing batch at ``pos``."""
    if not h.attributes & ATTR_CHECKPOINT:
        raise BatchError("the batch carries no checkpoint")
    start = pos + HEADER_SIZE + _CHECKPOINT_LEN.size
    (n,) = _CHECKPOINT_LEN.unpack_from(buf, pos + HEADER_SIZE)
    if start + n > pos + h.size:
        raise BatchError(f"checkpoint block of {n} bytes runs past the batch's end")
    return bytes(buf[start : start + n])


def checkpoint_block_size(buf: bytes | bytearray | memoryview, pos: int) -> int:
    """Bytes the checkpoint block right after the header at ``pos`` occupies."""
    (n,) = _CHECKPOINT_LEN.unpack_from(buf, pos + HEADER_SIZE)
    return int(_CHECKPOINT_LEN.size + n)


class Columns(NamedTuple):
    offsets: Sequence[int]
    timestamps: Sequence[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    headers: Sequence[tuple[tuple[str, bytes], ...]]


def decode_columns(buf: bytes, pos: int, h: BatchHeader) -> Columns:
    """The records of the (validated) batch at ``pos`` as columns."""
    n = h.record_count
    p = pos + HEADER_SIZE
    if h.attributes & ATTR_CHECKPOINT:
        p += checkpoint_block_size(buf, pos)
    offsets: Sequence[int]
    timestamps: Sequence[int]
    if h.attributes & ATTR_OFFSET_DELTAS:
        deltas, p = _array("i", buf, p, n)
        offsets = list(map(h.base_offset.__add__, deltas))
    else:
        offsets = range(h.base_offset, h.base_offset + n)
    if h.attributes & ATTR_TIMESTAMPS:
        timestamps, p = _array("q", buf, p, n)
    else:
        timestamps = [h.first_timestamp] * n
    klens, p = _array("i", buf, p, n)
    vlens, p = _array("i", buf, p, n)
    headers: Sequence[tuple[tuple[str, bytes], ...]]
    if h.attributes & ATTR_HEADERS:
        hlens, p = _array("i", buf, p, n)
        headers = _decode_headers(buf, p, hlens)
        p += sum(hlens)
    else:
        headers = [()] * n
    keys, p = _split(buf, p, klens)
    values, p = _split(buf, p, vlens)
    if p != pos + h.size:
        raise BatchError(f"columns end at byte {p - pos}, batch length says {h.size}")
    return Columns(offsets, timestamps, keys, values, headers)


def decode_records(
    buf: bytes, pos: int, h: BatchHeader, topic: str, partition: int
) -> list[LogRecord]:
    """The records of the (validated) batch at ``pos``."""
    c = decode_columns(buf, pos, h)
    columns = (c.offsets, c.timestamps, c.keys, c.values, c.headers)
    return list(map(_make_record, zip(repeat(topic), repeat(partition), *columns)))


class BlockColumns(NamedTuple):
    """A batch's records as its stored columns (see :class:`log.api.RecordBlock`)."""

    offsets: array[int]  # "q"
    timestamps: array[int]  # "q"
    key_lengths: bytes  # little-endian i32, -1 for null
    keys: bytes
    value_lengths: bytes
    values: bytes

    def __len__(self) -> int:
        return len(self.offsets)

    def between(self, lo: int, hi: int) -> BlockColumns:
        """Only the records with ``lo <= offset < hi``."""
        i, j = bisect_left(self.offsets, lo), bisect_left(self.offsets, hi)
        if i == 0 and j == len(self):
            return self
        klens = struct.unpack(f"<{len(self)}i", self.key_lengths)
        vlens = struct.unpack(f"<{len(self)}i", self.value_lengths)

        def cut(lens: tuple[int, ...], blob: bytes) -> bytes:
            start = sum(n for n in lens[:i] if n > 0)
            return blob[start:start + sum(n for n in lens[i:j] if n > 0)]

        return BlockColumns(
            self.offsets[i:j], self.timestamps[i:j], self.key_lengths[4 * i:4 * j],
            cut(klens, self.keys), self.value_lengths[4 * i:4 * j], cut(vlens, self.values),
        )


def _blob_size(lens: array[int]) -> int:
    return sum(lens) + lens.count(-1)  # -1 marks a null, which takes no bytes


def decode_block(buf: bytes, pos: int, h: BatchHeader) -> BlockColumns:
    """The records of the (validated) batch at ``pos`` as its columns: the key and value bytes
    stay concatenated as stored (no object per record), only offsets and times are arrays."""
    n = h.record_count
    p = pos + HEADER_SIZE
    if h.attributes & ATTR_CHECKPOINT:
        p += checkpoint_block_size(buf, pos)
    if h.attributes & ATTR_OFFSET_DELTAS:
        deltas, p = _array("i", buf, p, n)
        offsets = array("q", map(h.base_offset.__add__, deltas))
    else:
        offsets = array("q", range(h.base_offset, h.base_offset + n))
    if h.attributes & ATTR_TIMESTAMPS:
        timestamps, p = _array("q", buf, p, n)
    else:
        timestamps = array("q", [h.first_timestamp]) * n
    key_lengths, value_lengths = buf[p:p + 4 * n], buf[p + 4 * n:p + 8 * n]
    klens, p = _array("i", buf, p, n)
    vlens, p = _array("i", buf, p, n)
    if h.attributes & ATTR_HEADERS:
        hlens, p = _array("i", buf, p, n)
        p += sum(hlens)
    kend = p + _blob_size(klens)
    vend = kend + _blob_size(vlens)
    if vend != pos + h.size:
        raise BatchError(f"columns end at byte {vend - pos}, batch length says {h.size}")
    return BlockColumns(offsets, timestamps, key_lengths, buf[p:kend], value_lengths,
                        buf[kend:vend])
