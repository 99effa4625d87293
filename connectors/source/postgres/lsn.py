"""``Lsn``: a position in Postgres' write-ahead log.

An LSN is an unsigned 64-bit byte offset into the WAL. Postgres prints it as two hex words,
``"16/B374D848"`` (high 32 bits / low 32 bits); the replication protocol carries it as an
8-byte big-endian integer; changehub checkpoints store it as a plain int so it survives JSON
unchanged. ``Lsn`` converts between the three and orders positions. The hot decoding path
keeps LSNs as ints and only wraps them for messages, errors and SQL.
"""

from __future__ import annotations

import re
from typing import Any, Self

__all__ = ["INVALID_LSN", "MAX_LSN", "Lsn"]

MAX_LSN = (1 << 64) - 1
_TEXT = re.compile(r"^\s*([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\s*$")


class Lsn(int):
    """A WAL position: an ``int`` in ``[0, 2**64)`` that prints as ``"16/B374D848"``.

    Being an ``int`` makes it order, hash and serialize (to JSON, through orjson) like the
    number it is, with no wrapper to unpack on the hot path.
    """

    __slots__ = ()

    def __new__(cls, value: Any = 0) -> Self:
        if isinstance(value, str):
            return cls.parse(value)
        number = int(value)
        if not 0 <= number <= MAX_LSN:
            raise ValueError(f"an LSN is an unsigned 64-bit number, got {number}")
        return super().__new__(cls, number)

    @classmethod
    def parse(cls, text: str) -> Self:
        """``"16/B374D848"`` -> ``Lsn(0x16B374D848)``; ValueError names the expected form."""
        m = _TEXT.match(text)
        if m is None:
            raise ValueError(
                f"{text!r} is not an LSN: expected two hex numbers split by '/', e.g. 16/B374D848"
            )
        return cls((int(m.group(1), 16) << 32) | int(m.group(2), 16))

    def __str__(self) -> str:
        return f"{int(self) >> 32:X}/{int(self) & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"Lsn('{self}')"

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else int.__format__(int(self), spec)

    def __reduce__(self) -> tuple[type[Lsn], tuple[int]]:
        return (Lsn, (int(self),))


INVALID_LSN = Lsn(0)
