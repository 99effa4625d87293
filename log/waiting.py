"""Waking long-polling readers: a reader registers one :class:`Waiter` with every partition it
waits on, checks for data, then sleeps on the waiter's condition; an append (or a close, or a
topic deletion) fires it. Registering before checking means no wake-up is ever lost, and one
waiter over many partitions lets :meth:`Log.fetch` wake on whichever gets data first.

Thread-safe.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Waiter", "WaiterSet"]


class Waiter:
    """A one-shot flag with a condition to sleep on."""

    __slots__ = ("_cond", "_fired")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._fired = False

    def fire(self) -> None:
        with self._cond:
            self._fired = True
            self._cond.notify_all()

    def wait(self, deadline: float) -> bool:
        """Sleep until fired or until ``time.monotonic()`` reaches ``deadline``; True if fired."""
        with self._cond:
            while not self._fired:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True


class WaiterSet:
    """The waiters registered with one partition."""

    __slots__ = ("_lock", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[Waiter] = set()

    def add(self, waiter: Waiter) -> None:
        with self._lock:
            self._waiters.add(waiter)

    def discard(self, waiter: Waiter) -> None:
        with self._lock:
            self._waiters.discard(waiter)

    def fire_all(self) -> None:
        if not self._waiters:  # the common case of nobody waiting costs no lock
            return
        with self._lock:
            waiters = list(self._waiters)
        for w in waiters:
            w.fire()
