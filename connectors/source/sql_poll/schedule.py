"""When a ``sql_poll`` source polls: an APScheduler interval job that marks a poll as due.

The job only sets an event; the query itself runs in the hub's worker thread inside
``poll()``, so that database work, errors and backpressure stay on the thread the hub
supervises. Ticks that come while a poll is still paging coalesce into one. Thread-safe.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["Ticker"]

# APScheduler logs every run of a job at INFO ("Running job …") and every start, stop and
# added job; a tick every few seconds is not a state change worth a log line. Its loggers
# for our own executor alias and scheduler only pass warnings and errors on.
_EXECUTOR = "changehub_sql_poll"
_SCHEDULER_LOG = logging.getLogger("changehub.sql_poll.scheduler")
for _quiet in (_SCHEDULER_LOG, logging.getLogger(f"apscheduler.executors.{_EXECUTOR}")):
    _quiet.setLevel(logging.WARNING)


class Ticker:
    """Due once at start, then every ``interval_ms``; :meth:`wait` blocks until it is."""

    def __init__(self, interval_ms: int, name: str) -> None:
        self._interval_s = interval_ms / 1000
        self._name = name
        self._due = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            daemon=True,
            logger=_SCHEDULER_LOG,
            executors={_EXECUTOR: ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> None:
        with self._lock:
            if self._stopped or self._scheduler.running:
                return
            self._scheduler.add_job(
                self._due.set,
                IntervalTrigger(seconds=self._interval_s, timezone=UTC),
                id=f"sql_poll:{self._name}",
                executor=_EXECUTOR,
                name=f"poll {self._name}",
                next_run_time=datetime.now(UTC) + timedelta(seconds=self._interval_s),
            )
            # the first poll is due at once, set here rather than by the scheduler's thread:
            # a poll() right after start must find it due, or a one-shot run
            # (`run --until-caught-up`) could take the source for idle before it ever read
            self._due.set()
            self._scheduler.start()

    def wait(self, timeout: float) -> bool:
        """True when a poll is due (consuming the tick); False on timeout or after stop."""
        fired = self._due.wait(max(0.0, timeout))
        if self._stopped:
            return False
        if fired:
            self._due.clear()
        return fired

    def stop(self) -> None:
        """Stop ticking and wake a waiting :meth:`wait`. Idempotent, any thread."""
        with self._lock:
            self._stopped = True
            self._due.set()
            if self._scheduler.running:
                self._scheduler.shutdown(wait=False)
