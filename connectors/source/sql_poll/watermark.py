"""The poll watermark: how far a ``sql_poll`` source has read, and its checkpoint form.

The checkpoint is JSON: ``{"id": 1042}`` (incrementing), ``{"ts": "2026-01-31T02:00:00.5"}``
(timestamp) or both (timestamp+incrementing). ``ts`` is the ISO-8601 text of the last
timestamp read, with its offset when the column is zone-aware. A missing field means
"from the beginning", so a checkpoint written under another mode starts that field over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.errors import FatalError, SchemaError

__all__ = ["Cursor", "Watermark"]


@dataclass(frozen=True)
class Watermark:
    """The last (id, timestamp) read; None for a field not read yet."""

    id: int | None = None
    ts: datetime | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any] | None, source: str) -> Watermark:
        if not checkpoint:
            return cls()
        raw_id, raw_ts = checkpoint.get("id"), checkpoint.get("ts")
        if raw_id is not None and (not isinstance(raw_id, int) or isinstance(raw_id, bool)):
            raise FatalError(
                f"checkpoint of source {source!r} has id={raw_id!r}, expected an integer; "
                "it was not written by sql_poll: reset the source's checkpoint"
            )
        ts = None
        if raw_ts is not None:
            try:
                ts = datetime.fromisoformat(raw_ts)
            except (TypeError, ValueError):
                raise FatalError(
                    f"checkpoint of source {source!r} has ts={raw_ts!r}, expected an ISO-8601 "
                    "timestamp; it was not written by sql_poll: reset the source's checkpoint"
                ) from None
        return cls(raw_id, ts)

    def checkpoint(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        if self.ts is not None:
            out["ts"] = self.ts.isoformat()
        return out


@dataclass(frozen=True)
class Cursor:
    """The cursor columns of a polled relation, and the check that their values fit."""

    relation: str  # for messages: "table 'orders'" / "the query of source 'legacy'"
    incrementing: str | None
    timestamp: str | None

    def after(self, row: Mapping[str, Any]) -> Watermark:
        """The watermark once ``row`` has been read (rows arrive in cursor order)."""
        return Watermark(
            self.id_of(row) if self.incrementing else None,
            self.ts_of(row) if self.timestamp else None,
        )

    def id_of(self, row: Mapping[str, Any]) -> int:
        assert self.incrementing is not None
        value = row[self.incrementing]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise SchemaError(
            f"column {self.incrementing!r} of {self.relation} holds {value!r} "
            f"({type(value).__name__}); incrementing mode needs an integer column that only "
            "grows: choose another incrementing_column or use mode timestamp"
        )

    def ts_of(self, row: Mapping[str, Any]) -> datetime:
        assert self.timestamp is not None
        value = row[self.timestamp]
        if isinstance(value, datetime):
            return value
        raise SchemaError(
            f"column {self.timestamp!r} of {self.relation} holds {value!r} "
            f"({type(value).__name__}); the timestamp modes need a TIMESTAMP/DATETIME column: "
            "choose another timestamp_column or use mode incrementing"
        )
