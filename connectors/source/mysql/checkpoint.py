"""The offset context: where to resume, stored with the records it covers.

A checkpoint is the position *after* the batch it comes with. As JSON::

    {"v": 1,
     "gtid": "0-1-1234",             # MariaDB: GTID state (slave_connect_state) at the start
                                     #   of the next transaction; None on MySQL
     "file": "mysql-bin.000003",     # binlog file and position of that same point
     "pos": 4711,
     "skip": 0,                      # changes of the next transaction already in the log
     "skip_tx": "0-1-1235" | None,   # ... and that transaction's id
     "snapshot": {...} | None,       # initial snapshot in progress (SnapshotProgress)
     "replays": [{...}],             # changes to leave out until a position (Replay)
     "incremental": {...},           # optional: incremental snapshot queue
     "schema_history": {...}}        # optional: table definitions here (see history.py)

Batches end at transaction boundaries, except when a transaction is larger than one batch:
then ``skip`` says how many of its row changes (in binlog order, which is the same on every
read) are in the log already, and a resumed stream leaves them out of the transaction
``skip_tx`` (its GTID, or the binlog position of its BEGIN). Memory stays bounded
whatever the size of a transaction.

MariaDB resumes by GTID (``gtid``), MySQL by file and position. Both are always recorded;
``gtid`` is what MariaDB needs since mysql-replication ignores file/pos there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from connectors.source.incremental import IncrementalProgress, TableQueue
from hub.errors import FatalError

__all__ = [
    "Checkpoint",
    "GtidState",
    "Position",
    "Replay",
    "SnapshotProgress",
    "checkpoint_at",
    "position_at",
]

VERSION = 1


class GtidState:
    """MariaDB GTID state: the last GTID per replication domain (``0-1-12,1-2-5``)."""

    __slots__ = ("_domains",)

    def __init__(self, text: str | None = None) -> None:
        self._domains: dict[int, tuple[int, int]] = {}  # domain -> (server_id, seq_no)
        for raw in (text or "").split(","):
            part = raw.strip()
            if part:
                domain, server, seq = (int(x) for x in part.split("-"))
                self._domains[domain] = (server, seq)

    def add(self, domain: int, server: int, seq: int) -> None:
        self._domains[domain] = (server, seq)

    def contains(self, domain: int, seq: int) -> bool:
        """Whether transaction ``domain-*-seq`` is at or before this state."""
        last = self._domains.get(domain)
        return last is not None and seq <= last[1]

    def copy(self) -> GtidState:
        out = GtidState()
        out._domains = dict(self._domains)
        return out

    def __str__(self) -> str:
        domains = self._domains
        if len(domains) == 1:  # the usual case, once per transaction: no sort, no join
            ((d, (s, n)),) = domains.items()
            return f"{d}-{s}-{n}"
        return ",".join(f"{d}-{s}-{n}" for d, (s, n) in sorted(domains.items()))

    def __bool__(self) -> bool:
        return bool(self._domains)


@dataclass(frozen=True)
class Position:
    """A point between two transactions in the binlog."""

    gtid: str | None
    file: str
    pos: int

    def to_dict(self) -> dict[str, Any]:
        return {"gtid": self.gtid, "file": self.file, "pos": self.pos}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Position:
        gtid = d.get("gtid")
        return cls(None if gtid is None else str(gtid), str(d["file"]), int(d["pos"]))

    def covers(self, gtid: tuple[int, int] | None, file: str, pos: int) -> bool:
        """Whether the transaction at (``gtid``: domain, seq) / ``file``:``pos`` is at or
        before this position."""
        if self.gtid is not None and gtid is not None:
            return GtidState(self.gtid).contains(*gtid)
        return (file, pos) <= (self.file, self.pos)


@dataclass(frozen=True)
class SnapshotProgress(TableQueue):
    """How far the initial snapshot got: ``pending`` tables (``db.table``), the current one
    first; ``after`` the key of the current table's last row in the log (None: from its
    start)."""


@dataclass(frozen=True)
class Replay:
    """Changes the stream leaves out up to ``until``: a snapshot resumed after a crash read
    the rest of its tables in a new transaction at ``until``, so changes before it to rows
    that were not yet read are in the snapshot already. ``regions`` maps each such table to
    the key after which its rows were unread (None: the whole table)."""

    until: Position
    regions: dict[str, tuple[Any, ...] | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "until": self.until.to_dict(),
            "regions": {t: None if k is None else list(k) for t, k in self.regions.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Replay:
        return cls(
            Position.from_dict(d["until"]),
            {t: None if k is None else tuple(k) for t, k in d["regions"].items()},
        )

    def leaves_out(self, table: str, key: tuple[Any, ...] | None) -> bool:
        if table not in self.regions:
            return False
        after = self.regions[table]
        if after is None or key is None:
            return True
        try:
            return key > after
        except TypeError:
            return False


@dataclass(frozen=True)
class Checkpoint:
    position: Position
    skip: int = 0
    skip_tx: str | None = None
    snapshot: SnapshotProgress | None = None
    replays: tuple[Replay, ...] = ()
    incremental: IncrementalProgress | None = None
    history: Mapping[str, Any] | None = None  # SchemaHistory.to_dict(), shared, not copied

    def to_dict(self) -> dict[str, Any]:
        d = {
            "v": VERSION,
            **self.position.to_dict(),
            "skip": self.skip,
            "skip_tx": self.skip_tx,
            "snapshot": None if self.snapshot is None else self.snapshot.to_dict(),
            "replays": [r.to_dict() for r in self.replays],
        }
        if self.incremental is not None and self.incremental.pending:
            d["incremental"] = self.incremental.to_dict()
        if self.history is not None:
            d["schema_history"] = self.history
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str) -> Checkpoint:
        if d.get("v") != VERSION:
            raise FatalError(
                f"source {source}: the checkpoint in the log has version {d.get('v')!r}, this "
                f"changehub reads version {VERSION}; reset the source (changehub reset) to "
                "capture again from a snapshot"
            )
        snap, skip_tx, incremental = d.get("snapshot"), d.get("skip_tx"), d.get("incremental")
        return cls(
            Position.from_dict(d),
            int(d.get("skip", 0)),
            None if skip_tx is None else str(skip_tx),
            None if snap is None else SnapshotProgress.from_dict(snap),
            tuple(Replay.from_dict(r) for r in d.get("replays", ())),
            None if incremental is None else IncrementalProgress.from_dict(incremental),
            d.get("schema_history"),
        )

    def with_(self, **changes: Any) -> Checkpoint:
        return replace(self, **changes)


# The reader makes a Position and a Checkpoint for every transaction; a frozen dataclass's
# __init__ sets each field through object.__setattr__, which cost ~10 µs a transaction. These
# fill the instance's __dict__ at once: the same objects (equal, hashable, frozen after).
_new = object.__new__


def position_at(gtid: str | None, file: str, pos: int) -> Position:
    """``Position(gtid, file, pos)``, made faster."""
    p = _new(Position)
    p.__dict__.update(gtid=gtid, file=file, pos=pos)
    return p


def checkpoint_at(
    position: Position,
    skip: int,
    skip_tx: str | None,
    replays: tuple[Replay, ...],
    incremental: IncrementalProgress | None,
    history: Mapping[str, Any] | None,
) -> Checkpoint:
    """``Checkpoint(position, skip, skip_tx, None, replays, incremental, history)`` (no
    snapshot in progress: the stream's), made faster."""
    cp = _new(Checkpoint)
    cp.__dict__.update(
        position=position, skip=skip, skip_tx=skip_tx, snapshot=None, replays=replays,
        incremental=incremental, history=history,
    )  # fmt: skip
    return cp
