"""Named background jobs of the embedded log (retention, compaction), as Kafka's LogManager
schedules them: each on its own daemon thread, run every interval until stopped. A job that
raises is logged and tried again at the next interval; it never takes the log down.

Thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["PeriodicJob"]

_log = logging.getLogger(__name__)


class PeriodicJob:
    """Runs ``fn`` every ``interval_s`` seconds on a thread named ``name``."""

    def __init__(self, name: str, interval_s: float, fn: Callable[[], object]) -> None:
        self.name = name
        self.interval_s = interval_s
        self._fn = fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Event.wait returns early when stop() is called: no sleeping through a shutdown
        while not self._stop.wait(self.interval_s):
            try:
                self._fn()
            except Exception:
                _log.exception(
                    "background job %s failed; it runs again in %.0f s", self.name, self.interval_s
                )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
