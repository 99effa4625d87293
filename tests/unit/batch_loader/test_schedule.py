"""Fire times (time zones, DST) and the scheduled worker with an injected clock and wait."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import hub.schedule
from connectors.api import ConnectorContext
from connectors.sink.batch.export import ExportResult, run_export
from connectors.testing import DeadLetters, make_context
from hub.backoff import Backoff
from hub.errors import RetriableError
from hub.schedule import ScheduledExportWorker, missed_fire, next_fire
from hub.state import ConnectorState, ConnectorStatus
from log.api import TopicConfig
from log.embedded import EmbeddedLog

from .conftest import TOPIC, TP, change, config

DEADLINE_S = 10.0


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(spec: str, zone: str, after: datetime, n: int, tmp_path: Path) -> list[datetime]:
    trigger = config(tmp_path, schedule=spec, timezone=zone).trigger()
    out = []
    for _ in range(n):
        after = next_fire(trigger, after)
        out.append(after)
    return out


def test_a_nightly_schedule_follows_paris_across_the_spring_forward_night(
    tmp_path: Path,
) -> None:
    got = fires("0 2 * * *", "Europe/Paris", utc(2026, 3, 27, 12), 4, tmp_path)
    assert got == [
        utc(2026, 3, 28, 1),  # 02:00 CET
        utc(2026, 3, 29, 1),  # 02:00 does not exist that night: 03:00 CEST, the same instant
        utc(2026, 3, 30, 0),  # 02:00 CEST
        utc(2026, 3, 31, 0),
    ]


def test_a_wall_clock_time_that_happens_twice_fires_once_on_the_fall_back_night(
    tmp_path: Path,
) -> None:
    got = fires("30 2 * * *", "Europe/Paris", utc(2026, 10, 23, 12), 3, tmp_path)
    assert got == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_missed_fire_is_the_latest_fire_time_between_last_run_and_now(tmp_path: Path) -> None:
    trigger = config(tmp_path).trigger()
    assert missed_fire(trigger, utc(2026, 1, 1, 2), utc(2026, 1, 4, 1)) == utc(2026, 1, 3, 2)
    assert missed_fire(trigger, utc(2026, 1, 1, 2), utc(2026, 1, 2, 1, 59)) is None


def test_a_bad_cron_expression_or_time_zone_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a cron expression"):
        config(tmp_path, schedule="0 2 * *")
    with pytest.raises(ValidationError, match="unknown time zone"):
        config(tmp_path, timezone="Europe/Pariss")
    with pytest.raises(ValidationError, match="shape: latest is for scheduled exports"):
        config(tmp_path, schedule=None, shape="latest")


class Clock:
    """A settable UTC clock; ``wait`` moves it instead of sleeping (the worker's wait)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.lock = threading.Lock()
        self.waits = 0
        self.frozen = False  # then waits pass real time (briefly) and the clock stands still

    def __call__(self) -> datetime:
        with self.lock:
            return self.now

    def wait(self, seconds: float) -> bool:
        with self.lock:
            if not self.frozen:
                self.now += timedelta(seconds=seconds)
            self.waits += 1
        if self.frozen:
            threading.Event().wait(0.001)
        return False


def start_worker(log_: EmbeddedLog, tmp_path: Path, clock: Clock,
                 progress: list[tuple[str, int, int | None]] | None = None,
                 **keys: Any) -> ScheduledExportWorker:
    cfg = config(tmp_path / "out", **keys)

    def context() -> ConnectorContext:
        made = make_context("nightly", tmp_path / "data", DeadLetters(tolerate=False))
        if progress is not None:
            made.progress = lambda *report: progress.append(report)
        return made

    worker = ScheduledExportWorker(
        ConnectorStatus("nightly", "sink", "batch"), cfg, log_, context,
        lambda _topic: 1, backoff=Backoff(initial=0.01, maximum=0.01), clock=clock,
        wait=clock.wait,
    )
    worker.start()
    return worker


def wait_for(what: str, condition: Any) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        threading.Event().wait(0.01)


def stop(worker: ScheduledExportWorker) -> None:
    worker.stop()
    worker.join(DEADLINE_S)
    assert not worker.is_alive()


def test_the_worker_exports_at_the_fire_time_and_not_before(
    log_: EmbeddedLog, tmp_path: Path
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    log_.append(TP, change("c", 1, "a", 1_769_812_200_000))
    clock = Clock(utc(2026, 1, 30, 23))
    progress: list[tuple[str, int, int | None]] = []
    worker = start_worker(log_, tmp_path, clock, progress)
    try:
        wait_for("the export", lambda: worker.last_result is not None)
        assert progress[-1] == ("export", 1, 1)
        assert clock() >= utc(2026, 1, 31, 2)
        assert worker.last_result is not None and worker.last_result.records == 1
        assert log_.committed_offsets("nightly") == {TP: 1}
        wait_for("the next fire time", lambda: worker.next_run == utc(2026, 2, 1, 2))
        assert worker.status.state == ConnectorState.RUNNING
    finally:
        stop(worker)


def test_a_run_missed_while_the_hub_was_down_is_caught_up_at_start(
    log_: EmbeddedLog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    clock = Clock(utc(2026, 1, 30, 12))
    worker = start_worker(log_, tmp_path, clock)
    wait_for("the first step", lambda: clock.waits > 0)
    stop(worker)  # the hub goes down before 02:00 and comes back at 09:00
    log_.append(TP, change("c", 1, "a", 1_769_812_200_000))
    clock.now = utc(2026, 1, 31, 9)
    clock.frozen = True
    caplog.set_level(logging.INFO, "changehub.schedule")
    worker = start_worker(log_, tmp_path, clock)
    try:
        wait_for("the caught-up export", lambda: worker.last_result is not None)
        assert clock() == utc(2026, 1, 31, 9)  # at start, not at the next fire time
        wait_for("the next fire time", lambda: worker.next_run == utc(2026, 2, 1, 2))
        assert log_.committed_offsets("nightly") == {TP: 1}
        assert any("was missed" in r.getMessage() for r in caplog.records)
    finally:
        stop(worker)


def test_misfire_skip_waits_for_the_next_fire_time(log_: EmbeddedLog, tmp_path: Path) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    clock = Clock(utc(2026, 1, 30, 12))
    worker = start_worker(log_, tmp_path, clock, misfire="skip")
    wait_for("the first step", lambda: clock.waits > 0)
    stop(worker)
    stray = tmp_path / "out" / TOPIC / "dt=2026-01-30" / "0123456789abcdef-0-0-0.jsonl"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"{}")  # what a run killed with the hub left
    clock.now = utc(2026, 1, 31, 9)
    worker = start_worker(log_, tmp_path, clock, misfire="skip")
    try:
        wait_for("the next fire time", lambda: worker.next_run == utc(2026, 2, 1, 2))
        assert worker.last_result is None
        assert not stray.exists()  # removed at start, not only by the next run
    finally:
        stop(worker)


def test_a_failed_export_is_retried_even_with_misfire_skip(
    log_: EmbeddedLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    log_.append(TP, change("c", 1, "a", 1_769_812_200_000))
    failures = [RetriableError("disk full (will retry)")]

    def export_failing_once(*args: Any, **kwargs: Any) -> ExportResult:
        if failures:
            raise failures.pop()
        return run_export(*args, **kwargs)

    monkeypatch.setattr(hub.schedule, "run_export", export_failing_once)
    clock = Clock(utc(2026, 1, 31, 1, 59, 55))
    worker = start_worker(log_, tmp_path, clock, misfire="skip")
    try:
        wait_for("the retried export", lambda: worker.last_result is not None)
        assert worker.status.retries == 1
        assert log_.committed_offsets("nightly") == {TP: 1}
        wait_for("the next fire time", lambda: worker.next_run == utc(2026, 2, 1, 2))
    finally:
        stop(worker)
