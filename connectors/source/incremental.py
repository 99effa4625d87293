"""What the CDC sources share for incremental snapshots (DBLog watermarks, as Debezium's).

A source re-reads tables in key-ordered chunks while it streams; between a chunk's *low*
and *high* watermark in the change stream, streamed changes of the table replace the rows
read (they are as new as the read, or newer), and at the high watermark the rows left are
emitted as reads. Each source writes its watermarks and receives its requests through its
own database's log (see ``postgres/incremental_snapshot.py`` and
``mysql/incremental_snapshot.py``); the queue of tables and how far the current one got are
kept in the checkpoint as an :class:`IncrementalProgress`, and the request sent by
``changehub snapshot`` has the same body for every source (:func:`snapshot_request`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Self

import orjson

__all__ = [
    "EXECUTE_SNAPSHOT",
    "IncrementalProgress",
    "TableQueue",
    "parse_request",
    "snapshot_request",
]

EXECUTE_SNAPSHOT: Final = "execute-snapshot"


@dataclass(frozen=True)
class TableQueue:
    """Tables to read in key order, the current one first, and how far the current one got.

    ``after`` is the key (JSON values, in key-column order) of the current table's last row
    already in the log (None: from its start); ``rows`` counts the rows read so far. Both the
    initial snapshot of the MySQL source and the incremental snapshots keep one of these in
    their checkpoint.
    """

    pending: tuple[str, ...] = ()
    after: tuple[Any, ...] | None = None
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "pending": list(self.pending),
            "after": None if self.after is None else list(self.after),
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        after = d.get("after")
        return cls(
            pending=tuple(str(t) for t in d["pending"]),
            after=None if after is None else tuple(after),
            rows=int(d.get("rows", 0)),
        )


@dataclass(frozen=True)
class IncrementalProgress(TableQueue):
    """The queue of tables to snapshot incrementally while streaming.

    Open windows are not saved: after a restart the chunk after ``after`` is simply read
    again in a new window.
    """

    def queue(self, tables: Sequence[str]) -> IncrementalProgress | None:
        """With ``tables`` appended (those not queued already); None if nothing is new."""
        new = [t for t in dict.fromkeys(tables) if t not in self.pending]
        if not new:
            return None
        return IncrementalProgress(self.pending + tuple(new), self.after, self.rows)


def snapshot_request(source: str, tables: Sequence[str]) -> bytes:
    """The body of a request to ``source`` to snapshot ``tables`` again."""
    return orjson.dumps({"source": source, "type": EXECUTE_SNAPSHOT, "tables": list(tables)})


def parse_request(body: bytes | str, source: str) -> list[str] | None:
    """The tables a request asks ``source`` to snapshot; None if it is not such a request
    for this source (another source's, another kind, or malformed)."""
    try:
        data = orjson.loads(body)
        if data.get("source") != source or data.get("type") != EXECUTE_SNAPSHOT:
            return None
        return [str(t) for t in data.get("tables", ())]
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return None
