"""Seconds a CDC source is behind its database: the commit time of the last change the log
made durable, for a source's optional ``metrics()``.

A source's reader thread notes, for each batch it hands over, the position after it, the
commit time of the last transaction in it (a heartbeat batch: the time it was made, since
the reader was then at the end) and whether it carries changes; the hub thread's
``committed`` call makes every batch up to its checkpoint's position durable. Positions are
anything ordered the way the database's log is (a Postgres LSN, a binlog ``(file, pos)``).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

__all__ = ["DurableTime"]


class DurableTime:
    """Thread-safe: one thread ships, another commits, a third measures."""

    def __init__(self, ts_ms: int | None = None) -> None:
        self._lock = threading.Lock()
        # Bounded by the source's hand-off queue: its reader blocks while the hub does not take.
        self._shipped: deque[tuple[Any, int, bool]] = deque()
        self._unsaved_changes = 0  # shipped batches with changes, not durable yet
        self.ts_ms = ts_ms  # commit time of the last durable change (None: not known yet)

    def shipped(self, position: Any, ts_ms: int, changes: bool) -> None:
        with self._lock:
            self._shipped.append((position, ts_ms, changes))
            self._unsaved_changes += changes

    def committed(self, position: Any) -> None:
        with self._lock:
            shipped = self._shipped
            while shipped and shipped[0][0] <= position:
                _, self.ts_ms, changes = shipped.popleft()
                self._unsaved_changes -= changes

    @property
    def unsaved(self) -> bool:
        """Changes were handed over that the log has not made durable yet."""
        return self._unsaved_changes > 0

    def seconds_behind(self, now_ms: int) -> float | None:
        ts = self.ts_ms
        return None if ts is None else max(0.0, (now_ms - ts) / 1000)
