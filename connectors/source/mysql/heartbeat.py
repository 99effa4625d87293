"""Heartbeats: an idle capture still moves its checkpoint.

When the captured tables see no writes while the rest of the server writes (other
databases, filtered tables), the binlog still moves: every transaction passes the reader,
which keeps its GTID state and file position (see :mod:`streaming`). Without records there
is no batch, and the checkpoint in the log would stay behind — after a restart the source
would read all that again, and the binlog it needs could be purged meanwhile.

So every ``heartbeat_interval`` without a batch, the reader hands over an empty batch with
its current checkpoint if that moved (between transactions only). The server itself is
asked for heartbeat events (see :mod:`binlog`) so that the reader wakes up on a completely
idle server too; those also carry the current file position, which moves the checkpoint of a
file+position (MySQL) stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Heartbeat"]


class Heartbeat:
    """When the next empty batch is due. Not thread-safe (the reader owns it)."""

    def __init__(self, interval_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_ms / 1000
        self._clock = clock
        self._next = clock() + self._interval

    def due(self) -> bool:
        return self._clock() >= self._next

    def postpone(self) -> None:
        """A batch was handed over: the next heartbeat is one interval from now."""
        self._next = self._clock() + self._interval

    @property
    def seconds(self) -> float:
        return self._interval
