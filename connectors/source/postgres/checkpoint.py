"""The offset context: everything the source needs to resume, stored with the records.

A checkpoint is the position *after* the batch it comes with. As JSON::

    {"v": 1,
     "lsn": 23456789,                               # see below
     "txn": {"commit_lsn": 23457000, "events": 500},  # optional: inside a big transaction
     "snapshot": {...},                             # optional: initial snapshot in progress
     "incremental": {...},                          # optional: incremental snapshot queue
     "resumed": [...]}                              # optional: see resume.py

``lsn`` is the end LSN of the last transaction whose events are all in the log (the commit
record's end, which is what the slot is told to confirm), or, before any transaction, the
slot's consistent point. Postgres resends every transaction whose commit record lies at or
after the slot's confirmed position; since the slot is confirmed only after the log made a
batch durable, it can be behind ``lsn``, so on resume every transaction with a commit LSN
below ``lsn`` is skipped as already written.

A transaction larger than one batch is split: ``txn`` then says that its first ``events``
events (in the order Postgres sends them, which is the same on every decoding) are in the
log already, and on resume they are skipped too. Memory stays bounded by the batch size
whatever the size of the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from connectors.source.incremental import IncrementalProgress
from connectors.source.postgres.resume import ReadRange
from hub.errors import FatalError

__all__ = ["Checkpoint", "IncrementalProgress", "SnapshotProgress"]

VERSION = 1


@dataclass(frozen=True)
class SnapshotProgress:
    """How far the snapshot of the captured tables got.

    ``pending`` lists the tables still to read, the current one first; ``after`` is the key
    (text values, in key-column order) of the last row of the current table already in the
    log, None to start the table from its beginning. ``lsn`` stamps the snapshot's events.
    ``exact`` is True while the rows are read in the slot's exported snapshot (the stream
    continues exactly where they end); a snapshot resumed after a crash reads the rest in a
    new snapshot and is not exact (see :mod:`snapshot` and :mod:`resume`). ``first`` is False
    for the snapshots of mode ``always`` after the first start: the log has older events of
    the tables then.
    """

    lsn: int
    exact: bool
    pending: tuple[str, ...]
    after: tuple[str, ...] | None = None
    rows: int = 0
    first: bool = True  # the log holds nothing of these tables but this snapshot's reads

    def to_dict(self) -> dict[str, Any]:
        return {
            "lsn": int(self.lsn),
            "exact": self.exact,
            "pending": list(self.pending),
            "after": None if self.after is None else list(self.after),
            "rows": self.rows,
            "first": self.first,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SnapshotProgress:
        after = d.get("after")
        return cls(
            lsn=int(d["lsn"]),
            exact=bool(d["exact"]),
            pending=tuple(str(t) for t in d["pending"]),
            after=None if after is None else tuple(str(v) for v in after),
            rows=int(d.get("rows", 0)),
            first=bool(d.get("first", True)),
        )


@dataclass(frozen=True)
class Checkpoint:
    lsn: int
    txn_commit_lsn: int | None = None
    txn_events: int = 0
    snapshot: SnapshotProgress | None = None
    incremental: IncrementalProgress | None = None
    tables: tuple[str, ...] = field(default=())  # the tables captured when it was written
    resumed: tuple[ReadRange, ...] = ()  # reads of a resumed snapshot (see resume.py)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"v": VERSION, "lsn": int(self.lsn), "tables": list(self.tables)}
        if self.txn_commit_lsn is not None:
            d["txn"] = {"commit_lsn": int(self.txn_commit_lsn), "events": self.txn_events}
        if self.snapshot is not None:
            d["snapshot"] = self.snapshot.to_dict()
        if self.incremental is not None and self.incremental.pending:
            d["incremental"] = self.incremental.to_dict()
        if self.resumed:
            d["resumed"] = [r.to_dict() for r in self.resumed]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str) -> Checkpoint:
        try:
            if d.get("v") != VERSION:
                raise ValueError(f"version {d.get('v')!r}, expected {VERSION}")
            txn = d.get("txn")
            snapshot = d.get("snapshot")
            incremental = d.get("incremental")
            return cls(
                lsn=int(d["lsn"]),
                txn_commit_lsn=None if txn is None else int(txn["commit_lsn"]),
                txn_events=0 if txn is None else int(txn["events"]),
                snapshot=None if snapshot is None else SnapshotProgress.from_dict(snapshot),
                incremental=(
                    None if incremental is None else IncrementalProgress.from_dict(incremental)
                ),
                tables=tuple(str(t) for t in d.get("tables", ())),
                resumed=tuple(ReadRange.from_dict(r) for r in d.get("resumed", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FatalError(
                f"the checkpoint of source {source!r} in the log is not one a postgres source "
                f"wrote ({exc}): {dict(d)!r}. If the source's type changed, give it a new name "
                "or reset it (changehub reset)."
            ) from None

    def is_written(self, commit_lsn: int) -> bool:
        """Whether the whole transaction committed at ``commit_lsn`` is in the log already."""
        return commit_lsn < self.lsn

    def with_(self, **changes: Any) -> Checkpoint:
        return replace(self, **changes)
