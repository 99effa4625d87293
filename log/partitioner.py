"""Which partition a key goes to: Kafka's default partitioner, byte for byte.

``toPositive(murmur2(key)) % n`` with the murmur2 variant of Kafka's ``Utils.murmur2`` (seed
``0x9747b28c``, 4-byte little-endian words, signed 32-bit result), so that both log backends
— and any Java producer — put a key in the same partition. A record without a key goes to
partition 0: records of a table without a primary key stay in one order.

Pure functions: thread-safe.
"""

from __future__ import annotations

import sys
from array import array

__all__ = ["murmur2", "partition_for"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_BIG_ENDIAN = sys.byteorder == "big"


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: a signed 32-bit hash of ``data``."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n_words = length // 4
    words = array("I")
    if words.itemsize != 4:  # pragma: no cover - every platform CPython runs on has 4-byte I
        words = array("L")
    words.frombytes(data[: n_words * 4])
    if _BIG_ENDIAN:  # pragma: no cover
        words.byteswap()
    for word in words:
        k = (word * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        rest = data[n_words * 4 :]
        if tail == 3:
            h ^= rest[2] << 16
        if tail >= 2:
            h ^= rest[1] << 8
        h ^= rest[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes | None, n: int) -> int:
    """The partition of ``key`` among ``n``: ``toPositive(murmur2(key)) % n``; None -> 0."""
    if n == 1 or key is None:
        return 0
    if n < 1:
        raise ValueError(f"a topic has at least one partition, got {n}")
    return (murmur2(key) & 0x7FFFFFFF) % n
