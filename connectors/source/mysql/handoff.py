"""The hand-off between the reader thread and the hub's thread.

The reader decodes the binlog and puts :class:`Chunk` s (one per transaction, or parts of a
big one) here; ``poll`` in the hub's thread takes every chunk that is ready — up to
``max_events`` records — as one batch with the last chunk's checkpoint. So decoding runs
beside the hub's appends and fsyncs, batches grow while the log is busy (group commit) and
shrink to one transaction when it is idle (low latency). At most ``capacity`` records wait,
so memory stays bounded; a reader that gets ahead blocks in :meth:`put`.

An error in the reader is handed over too and raised from :meth:`take`, after the batches
before it.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from connectors.api import SourceBatch, SourceRecord
from connectors.source.mysql.streaming import Chunk

__all__ = ["HandOff", "HandOffClosedError"]


class HandOffClosedError(Exception):
    """The hand-off was closed (the source is stopping)."""


class HandOff:
    """A bounded, closable queue of chunks (and at most one error). Thread-safe."""

    def __init__(self, capacity: int, max_events: int) -> None:
        self._capacity = capacity
        self._max_events = max_events
        self._items: deque[Chunk | BaseException] = deque()
        self._records = 0
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Chunk | BaseException, timeout: float | None = None) -> bool:
        """Queue ``item``; False if still full after ``timeout``. Raises if closed.

        A chunk larger than the capacity is let in when the queue is empty.
        """
        size = len(item.records) if isinstance(item, Chunk) else 0
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._items and self._records + size > self._capacity and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            if self._closed:
                raise HandOffClosedError
            self._items.append(item)
            self._records += size
            self._cond.notify_all()
            return True

    def take(self, timeout: float) -> SourceBatch | None:
        """The chunks ready now as one batch, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._items and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            records: list[SourceRecord] = []
            checkpoint = None
            while self._items:
                item = self._items[0]
                if isinstance(item, BaseException):
                    if checkpoint is not None:
                        break  # first hand over what came before the error
                    self._items.popleft()
                    self._cond.notify_all()
                    raise item
                if checkpoint is not None and len(records) + len(item.records) > self._max_events:
                    break
                self._items.popleft()
                self._records -= len(item.records)
                records.extend(item.records)
                checkpoint = item.checkpoint
            self._cond.notify_all()
        if checkpoint is None:
            return None
        return SourceBatch(records, checkpoint.to_dict())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
