"""A ``batch`` sink with ``schedule:``: one export per cron fire time, under the hub's supervision.

:class:`ScheduledExportWorker` is a :class:`~hub.worker.Worker`, so states, retries, pause
and stop are the same as for any connector. Each step sleeps until the next fire time (an
event wait with a timeout, at most a second at a time so stop and pause stay prompt), then
runs one export (:func:`connectors.sink.batch.export.run_export`). The last fire time done
is kept in the connector's data directory (``schedule.json``), so a fire time missed while
the hub was down is known at start: ``misfire: catch_up`` runs it then (once, however many
were missed), ``skip`` logs it and waits for the next one.

Fire times come from APScheduler 3's ``CronTrigger`` in the configured time zone, stepped in
UTC so that they always move forward. Across DST: a wall-clock time that does not exist
(02:00 on the spring-forward night in Europe/Paris) fires at the same instant as 01:00 UTC,
i.e. 03:00 local; a wall-clock time that happens twice (02:30 on the fall-back night) fires
once, at its first occurrence.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from apscheduler.triggers.cron import CronTrigger

from connectors.api import ConnectorContext
from connectors.sink.batch.config import BatchSinkConfig
from connectors.sink.batch.export import ExportResult, clean_unfinished, run_export
from hub.backoff import Backoff
from hub.state import ConnectorStatus
from hub.worker import Worker
from log.api import Log, TopicPartition

__all__ = ["ScheduledExportWorker", "missed_fire", "next_fire"]

log = logging.getLogger("changehub.schedule")

STATE_FILE = "schedule.json"
MAX_SLEEP_S = 1.0
_TICK = timedelta(microseconds=1)


def next_fire(trigger: CronTrigger, after: datetime) -> datetime:
    """The first fire time strictly after ``after``, in UTC (see the module doc on DST)."""
    at = after.astimezone(UTC)
    while True:
        fire: datetime | None = trigger.get_next_fire_time(None, at + _TICK)
        if fire is None:
            raise ValueError("the schedule has no next fire time")
        previous: datetime | None = trigger.get_next_fire_time(
            None, fire.astimezone(UTC) - timedelta(hours=1))
        # The second occurrence of a repeated wall-clock time (fall back) is not a new fire.
        if (previous is not None and previous.astimezone(UTC) < fire.astimezone(UTC)
                and previous.replace(tzinfo=None) == fire.replace(tzinfo=None)):
            at = fire.astimezone(UTC)
            continue
        return fire.astimezone(UTC)


def missed_fire(trigger: CronTrigger, last: datetime, now: datetime) -> datetime | None:
    """The latest fire time after ``last`` and not after ``now``, if any was missed."""
    missed = None
    fire = next_fire(trigger, last)
    while fire <= now:
        missed = fire
        fire = next_fire(trigger, fire)
    return missed


class ScheduledExportWorker(Worker):
    """See the module doc. ``clock`` and ``wait`` are injected by tests."""

    def __init__(
        self,
        status: ConnectorStatus,
        config: BatchSinkConfig,
        log_: Log,
        make_context: Callable[[], ConnectorContext],
        ensure_topic: Callable[[str], int],
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        super().__init__(status, backoff)
        self._config = config
        self._trigger = config.trigger()
        self._log = log_
        self._make_context = make_context
        self._ensure_topic = ensure_topic
        self._clock = clock
        self._wait = wait or self.stopping.wait
        self._context: ConnectorContext | None = None
        self._last: datetime = clock()
        self._due: datetime = clock()
        self._retrying: datetime | None = None  # the fire time of an export that failed
        self.last_result: ExportResult | None = None

    @property
    def committed(self) -> dict[TopicPartition, int]:
        """The offsets the last finished export committed (for lag in the API and metrics)."""
        return self._log.committed_offsets(self.status.name)

    def open(self) -> None:
        self._context = self._make_context()
        clean_unfinished(self._config)  # a run killed with the hub: nothing of it stays visible
        if self._retrying is not None:
            # A retry after a failed export: that run is still due, whatever the misfire policy.
            self._due = self._retrying
            return
        now = self._clock()
        stored = self._load_last()
        self._last = stored or now
        if stored is None:
            self._store_last(now)  # first start: the schedule begins now, nothing is missed
        missed = missed_fire(self._trigger, self._last, now)
        if missed is not None and self._config.misfire == "catch_up":
            log.info("sink %s: the export due at %s was missed (hub down?); running it now",
                     self.status.name, missed.isoformat())
            self._due = missed
        else:
            if missed is not None:
                log.warning("sink %s: skipped the export due at %s (misfire: skip)",
                            self.status.name, missed.isoformat())
                self._last = missed
                self._store_last(missed)
            self._due = next_fire(self._trigger, self._last)
        log.info("sink %s: next export at %s", self.status.name, self._due.isoformat())

    def step(self) -> None:
        remaining = (self._due - self._clock()).total_seconds()
        if remaining > 0:
            self._wait(min(remaining, MAX_SLEEP_S))
            return
        self._retrying = self._due
        self._export()
        self._retrying = None
        self._last = self._due
        self._store_last(self._due)
        self._due = next_fire(self._trigger, max(self._due, self._clock()))
        log.info("sink %s: next export at %s", self.status.name, self._due.isoformat())

    def close(self, graceful: bool) -> None:
        self._context = None

    @property
    def next_run(self) -> datetime:
        return self._due

    def run_now(self) -> datetime:
        """Export at the next step (within a second); returns the scheduled time it will
        come back to afterwards. Safe from another thread (one assignment)."""
        upcoming = self._due
        self._due = min(self._due, self._clock())
        return upcoming

    def _export(self) -> None:
        assert self._context is not None
        name = self.status.name
        started = time.monotonic()
        result = run_export(self._config, self._log, progress=self._context.progress,
                            ensure_topic=self._ensure_topic)
        self.last_result = result
        self.cell.add(records=result.records)
        self.backoff.reset()
        log.info("sink %s: export %s done: %d record(s) in %d file(s) in %.1fs", name,
                 result.run_id or "(nothing new)", result.records, len(result.files),
                 time.monotonic() - started)

    def _state_path(self) -> Path:
        assert self._context is not None
        return self._context.data_dir / STATE_FILE

    def _load_last(self) -> datetime | None:
        path = self._state_path()
        if not path.exists():
            return None
        return datetime.fromisoformat(orjson.loads(path.read_bytes())["last_fire"])

    def _store_last(self, when: datetime) -> None:
        path = self._state_path()
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(orjson.dumps({"last_fire": when.astimezone(UTC).isoformat()}))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
