"""A snapshot resumed in a new snapshot: which streamed changes its reads contain already.

The slot's exported snapshot dies with a crash, so an interrupted snapshot reads its
remaining rows in a new snapshot, while the slot still streams everything from the original
consistent point. A change committed in between to a row that is read *after* the restart
is then in two places: in the row read (which shows its result) and in the stream. Emitting
both would duplicate it. :class:`ReadRange` records, for each table still to read at the
restart, the key range read in the new snapshot and that snapshot's visibility
(``pg_current_snapshot()``: xmin, xmax, in-progress xids). A streamed change to a key in
that range by a transaction visible in that snapshot is skipped; everything else streams.
Per key this is exact: row locks order the transactions touching one row, so those visible
in the snapshot come first, and the rest follow the read in the log.

Comparing a streamed key with the range's first key needs Postgres' key order in Python:
that holds for integer and uuid keys and text keys under the C collation. A table with
another key type that was interrupted in its middle is read on without a range: the final
state is right, but changes in between may show up both as a read and as a change. A table
not started before the crash needs no comparison (the whole table is in the range). A
truncate of such a table in between ends its range (what follows it streams in full).

Ranges stay in the checkpoint until the stream passes ``until``, the WAL position at which
the new snapshot was taken: no transaction visible in it can commit later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from connectors.source.postgres.schema import TableSchema

__all__ = [
    "ORDERABLE_KEY_TYPES",
    "ReadRange",
    "ResumedReads",
    "SnapshotVisibility",
    "add_range",
    "key_orderable",
]

# Types whose text -> value mapping orders like Postgres orders them.
ORDERABLE_KEY_TYPES: Final = frozenset({20, 21, 23, 26, 2950})
TEXT_KEY_TYPES: Final = frozenset({25, 1043, 19})  # under the C collation
_XID_SPAN: Final = 1 << 32
_HALF: Final = 1 << 31


@dataclass(frozen=True)
class SnapshotVisibility:
    """``pg_current_snapshot()``: which transactions a snapshot sees (64-bit xids)."""

    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> SnapshotVisibility:
        """``"xmin:xmax:xip,xip"`` as ``pg_current_snapshot()::text`` prints it."""
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def sees(self, xid: int) -> bool:
        """Whether a transaction that committed (32-bit ``xid`` from the stream) is visible."""
        full = (self.xmax & ~(_XID_SPAN - 1)) | xid
        if full > self.xmax + _HALF:
            full -= _XID_SPAN
        elif full < self.xmax - _HALF:
            full += _XID_SPAN
        if full >= self.xmax:
            return False
        return full < self.xmin or full not in self.xip


@dataclass(frozen=True)
class ReadRange:
    """Rows of ``table`` after key ``after`` (all if None) were read in ``snapshot``."""

    table: str
    after: tuple[str, ...] | None
    snapshot: SnapshotVisibility
    until: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "after": None if self.after is None else list(self.after),
            "xmin": self.snapshot.xmin,
            "xmax": self.snapshot.xmax,
            "xip": sorted(self.snapshot.xip),
            "until": self.until,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReadRange:
        after = d["after"]
        return cls(
            table=str(d["table"]),
            after=None if after is None else tuple(str(v) for v in after),
            snapshot=SnapshotVisibility(
                int(d["xmin"]), int(d["xmax"]), frozenset(int(x) for x in d["xip"])
            ),
            until=int(d["until"]),
        )


def key_orderable(type_oids: Sequence[int], collations: Sequence[str]) -> bool:
    """Whether keys of these types compare in Python as Postgres orders them."""
    return all(
        t in ORDERABLE_KEY_TYPES or (t in TEXT_KEY_TYPES and c in ("C", "POSIX"))
        for t, c in zip(type_oids, collations, strict=True)
    )


def add_range(ranges: Sequence[ReadRange], new: ReadRange) -> tuple[ReadRange, ...]:
    """``ranges`` with ``new``, dropping the ones of its table it supersedes (same start)."""
    kept = [r for r in ranges if not (r.table == new.table and r.after == new.after)]
    return (*kept, new)


class ResumedReads:
    """Decides, during the stream, whether a change is in a resumed snapshot's reads."""

    def __init__(self, ranges: Sequence[ReadRange]) -> None:
        self._bounds: dict[tuple[str, tuple[str, ...]], tuple[Any, ...]] = {}
        self._set(ranges)

    def _set(self, ranges: Sequence[ReadRange]) -> None:
        self.ranges = tuple(ranges)
        self._by_table: dict[str, list[ReadRange]] = {}
        for r in self.ranges:
            self._by_table.setdefault(r.table, []).append(r)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def covers(self, table: TableSchema, key: bytes | None, xid: int) -> bool:
        """Whether the change of ``key`` by ``xid`` is in a read already (skip it)."""
        ranges = self._by_table.get(table.qualified)
        if not ranges or key is None or table.key_index is None:
            return False
        values = tuple(orjson.loads(key).values())
        best: ReadRange | None = None
        best_bound: tuple[Any, ...] | None = None
        for r in ranges:
            if r.after is None:
                if best is None or best.after is None:
                    best = r  # the later of two whole-table ranges
                continue
            bound = self._bound(table, r.after)
            if values > bound and (best_bound is None or bound >= best_bound):
                best, best_bound = r, bound
        return best is not None and best.snapshot.sees(xid)

    def _bound(self, table: TableSchema, after: tuple[str, ...]) -> tuple[Any, ...]:
        cached = self._bounds.get((table.qualified, after))
        if cached is None:
            assert table.key_index is not None
            cached = tuple(
                table.converters[i](v.encode("utf-8"))
                for i, v in zip(table.key_index, after, strict=True)
            )
            self._bounds[(table.qualified, after)] = cached
        return cached

    def truncated(self, table: str) -> None:
        """A truncate of ``table`` streams: from here on its changes stream in full."""
        self._set([r for r in self.ranges if r.table != table])

    def passed(self, lsn: int) -> bool:
        """Forget the ranges the stream has passed (at ``lsn``); True if any went."""
        kept = [r for r in self.ranges if r.until > lsn]
        if len(kept) == len(self.ranges):
            return False
        self._set(kept)
        return True
