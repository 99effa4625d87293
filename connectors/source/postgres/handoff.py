"""The hand-off between the source's reader thread and the hub's thread.

The reader receives, decodes and encodes changes into a batch; the hub's thread takes
finished batches in :meth:`HandOff.take` (from ``poll``) and appends them to the log. At
most ``depth`` batches wait, so memory is bounded by ``depth + 1`` batches; a reader that
gets ahead blocks in :meth:`HandOff.put`.

Batching adapts to the log's speed — group commit: the reader hands over what it has at
every idle moment of the stream, and while the hub's thread is busy appending, what it hands
over joins the batch still waiting in the queue (:meth:`HandOff.merge`, up to a size limit)
instead of queueing behind it. So when the hub's thread comes back for the next batch it finds
everything received so far, at once, without a round trip to the reader (large batches and
few fsyncs when busy, small ones at once when idle).

An error in the reader is handed over too and raised from ``take``, in order, after the
batches before it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from connectors.api import SourceBatch

__all__ = ["HandOff", "HandOffClosedError", "Waker"]


class Waker:
    """A pipe to wake a thread blocked in ``select``: ``wake`` from any thread, ``fileno``
    for the select set, ``clear`` once woken. Wakes are not counted, only noticed."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        # Held across the write and the close: a closed descriptor's number may soon belong
        # to another file, which a late wake must not write into.
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self._r

    def wake(self) -> None:
        with self._lock:
            if self._w < 0:
                return
            # A full pipe means already woken.
            with contextlib.suppress(OSError):
                os.write(self._w, b"x")

    def clear(self) -> None:
        if self._r < 0:
            return
        try:
            while os.read(self._r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        with self._lock:
            r, w, self._r, self._w = self._r, self._w, -1, -1
        for fd in (r, w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


class HandOffClosedError(Exception):
    """The hand-off was closed (the source is stopping)."""


class HandOff:
    """A bounded, closable queue of batches (and at most one error). Thread-safe."""

    def __init__(self, depth: int = 4, on_taker: Callable[[], None] | None = None) -> None:
        self._depth = depth
        self._on_taker = on_taker
        self._items: deque[SourceBatch | BaseException] = deque()
        self._last_bytes = 0  # the size the reader gave for the last queued batch
        self._cond = threading.Condition()
        self._closed = False
        self._takers = 0

    @property
    def taker_waiting(self) -> bool:
        """Whether the hub's thread waits for a batch right now (hand over at once)."""
        return self._takers > 0 and not self._items

    def put(
        self, item: SourceBatch | BaseException, timeout: float | None = None, nbytes: int = 0
    ) -> bool:
        """Queue ``item`` (of about ``nbytes``, for :meth:`merge`); False if still full after
        ``timeout``. Raises if closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while len(self._items) >= self._depth and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            if self._closed:
                raise HandOffClosedError
            self._items.append(item)
            self._last_bytes = nbytes
            self._cond.notify_all()
            return True

    def merge(self, batch: SourceBatch, nbytes: int, max_records: int, max_bytes: int) -> bool:
        """Add ``batch`` (of about ``nbytes``) to the last batch waiting in the queue if
        together they hold at most ``max_records`` records and ``max_bytes``; True if it did
        (the caller does not :meth:`put` it then). The merged batch carries ``batch``'s
        checkpoint, which covers both. Raises if closed."""
        with self._cond:
            if self._closed:
                raise HandOffClosedError
            if not self._items:
                return False
            last = self._items[-1]
            if (
                isinstance(last, BaseException)
                # a snapshot worker's chunk stays whole: it goes to the log laid out
                or not isinstance(last.records, list)
                or not isinstance(batch.records, list)
                or len(last.records) + len(batch.records) > max_records
                or self._last_bytes + nbytes > max_bytes
            ):
                return False
            last.records += batch.records
            last.checkpoint = batch.checkpoint
            self._last_bytes += nbytes
            return True

    def take(self, timeout: float) -> SourceBatch | None:
        """The next batch, or None after ``timeout``; raises a handed-over error."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._takers += 1
            if not self._items and self._on_taker is not None:
                self._on_taker()
            try:
                while not self._items and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(remaining)
                if not self._items:
                    return None
                item = self._items.popleft()
                self._cond.notify_all()
            finally:
                self._takers -= 1
        if isinstance(item, BaseException):
            raise item
        return item

    def wait_for_taker(self, timeout: float) -> bool:
        """Block until the hub's thread waits for a batch (True) or ``timeout`` (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._takers > 0 and not self._items) and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return not self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
