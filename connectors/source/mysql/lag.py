"""How far the log is behind the server's binlog: in bytes and in seconds.

Bytes: the binlog written after the position the log made durable (the last checkpoint
handed to ``committed``), summed over the server's binlog files (``SHOW BINARY LOGS``), so
a rotation in between counts the rest of the older file too. File and position are what
both MariaDB (which resumes by GTID) and MySQL record in the checkpoint.

Seconds: now minus the commit time of the last binlog event the log made durable; 0 when
the bytes say the log is caught up (an idle server is not "behind" however long ago its last
write was). The reader notes, for each chunk it hands over, the binlog time of the event
that ended it (a heartbeat: the time it arrived, since the reader was then at the end), and
``committed`` looks the time up by position (:class:`~connectors.lag.DurableTime`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connectors.lag import DurableTime
from connectors.source.mysql.checkpoint import Position

__all__ = ["LagMeter", "bytes_behind"]


def bytes_behind(logs: Sequence[tuple[str, int]], file: str, pos: int) -> int | None:
    """Binlog bytes after ``file``:``pos``, given the server's ``(file, size)`` list in order;
    None when ``file`` is no longer on the server (purged: the lag is beyond measuring)."""
    names = [name for name, _ in logs]
    if file not in names:
        return None
    at = names.index(file)
    return max(0, sum(size for _, size in logs[at:]) - pos)


class LagMeter:
    """Positions shipped by the reader thread, made durable by the hub thread, measured by
    a metrics reader (a third thread): each call is safe from its own thread."""

    def __init__(self, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self.durable: Position | None = None
        self._time = DurableTime()

    def started(self, position: Position, ts_ms: int | None) -> None:
        with self._lock:
            self.durable = position
            self._time = DurableTime(ts_ms)

    def shipped(self, position: Position, ts_ms: int, changes: bool) -> None:
        self._time.shipped((position.file, position.pos), ts_ms, changes)

    def committed(self, checkpoint: Mapping[str, Any]) -> None:
        position = Position.from_dict(checkpoint)
        self._time.committed((position.file, position.pos))
        with self._lock:
            self.durable = position

    def measure(self, logs: Sequence[tuple[str, int]]) -> dict[str, float]:
        """``lag_bytes`` and ``lag_seconds`` against the server's binlog files ``logs``
        (what is not known yet — nothing durable, a purged file — is left out)."""
        with self._lock:
            durable = self.durable
        if durable is None:
            return {}
        behind = bytes_behind(logs, durable.file, durable.pos)
        if behind is None:
            return {}
        out = {"lag_bytes": float(behind)}
        if behind == 0:
            out["lag_seconds"] = 0.0
        else:
            seconds = self._time.seconds_behind(self._clock_ms())
            if seconds is not None:
                out["lag_seconds"] = seconds
        return out
