"""The durability policy: when an append has been fsync'd enough to be acknowledged.

* ``batch``: the appending thread fsyncs before it returns (done in the partition);
* ``interval``: the :class:`Flusher` thread fsyncs the partitions written since its last round,
  at most once every ``interval_ms``; an append waits for the first round that *starts*
  after its write (a round already running may have missed it), then returns. Records become
  visible to readers when that round made them durable;
* ``never``: nobody waits for fsync (the OS writes back when it likes; :meth:`Log.close`
  fsyncs). Records are visible at once. A kill -9 loses nothing, a power cut may.

Checkpointed appends fsync at once under both ``batch`` and ``interval``: their checkpoint
must never become durable before the records it covers.

Thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time

from hub.errors import LogClosedError, LogError, LogStorageError
from log.partition import PartitionLog

__all__ = ["Flusher"]

_log = logging.getLogger(__name__)


class Flusher:
    """Background fsync for the ``interval`` policy: one thread, rounds at most every interval."""

    def __init__(self, interval_ms: int) -> None:
        self.interval = max(interval_ms, 1) / 1000.0
        self._cond = threading.Condition(threading.Lock())
        self._dirty: set[PartitionLog] = set()
        self._started = 0
        self._completed = 0
        self._stopped = False
        self._last_round = 0.0
        self._thread = threading.Thread(target=self._run, name="log-flusher", daemon=True)
        self._thread.start()

    def await_durable(self, partition: PartitionLog) -> None:
        """Block until a round that started after this call flushed ``partition``."""
        with self._cond:
            if self._stopped:
                raise LogClosedError("the log was closed before the append was made durable")
            self._dirty.add(partition)
            target = self._started + 1
            self._cond.notify_all()
            while self._completed < target:
                if self._stopped:
                    raise LogClosedError("the log was closed before the append was made durable")
                self._cond.wait()
        if partition.failed is not None:
            raise LogStorageError(f"{partition.tp}: {partition.failed}")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                due = self._last_round + self.interval
                while not self._stopped and (now := time.monotonic()) < due:
                    self._cond.wait(due - now)
                if self._stopped:
                    return
                self._started += 1
                batch, self._dirty = self._dirty, set()
                self._last_round = time.monotonic()
            for p in batch:
                try:
                    p.flush_and_publish()
                except LogError as e:  # the partition remembers it failed; waiters see it
                    _log.error("interval flush of %s failed: %s", p.tp, e)
                except Exception:  # never leave appenders waiting on a dead thread
                    p.failed = p.failed or "the interval flusher failed unexpectedly"
                    _log.exception("interval flush of %s failed", p.tp)
            with self._cond:
                self._completed = self._started
                self._cond.notify_all()

    def close(self) -> None:
        """Stop the thread; appends still waiting get LogClosedError (the log's close fsyncs)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()
