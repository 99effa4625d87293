"""Rates from observed totals, and the state shown for a source still snapshotting."""

from __future__ import annotations

from hub.metrics import RateTracker, current_progress, effective_state
from hub.state import ConnectorState, ConnectorStatus


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_is_records_per_second_over_the_window() -> None:
    clock = Clock()
    rates = RateTracker(window_s=10.0, clock=clock)
    assert rates.observe("s", 0) == 0.0
    clock.now += 2
    assert rates.observe("s", 200) == 100.0
    clock.now += 2
    assert rates.observe("s", 600) == 150.0


def test_old_samples_leave_the_window() -> None:
    clock = Clock()
    rates = RateTracker(window_s=10.0, clock=clock)
    rates.observe("s", 0)
    clock.now += 20
    rates.observe("s", 10_000)  # a burst long ago
    clock.now += 20
    assert rates.observe("s", 10_000) == 0.0  # nothing since


def test_a_restarted_worker_counting_from_zero_is_not_a_negative_rate() -> None:
    clock = Clock()
    rates = RateTracker(clock=clock)
    rates.observe("s", 500)
    clock.now += 1
    assert rates.observe("s", 10) == 0.0
    clock.now += 1
    assert rates.observe("s", 20) == 10.0


def _status(state: ConnectorState, checkpoint: dict[str, object] | None,
            kind: str = "source") -> ConnectorStatus:
    return ConnectorStatus("x", kind, "postgres", state=state,  # type: ignore[arg-type]
                           checkpoint=checkpoint)


def test_a_running_source_with_snapshot_progress_shows_snapshotting() -> None:
    running = ConnectorState.RUNNING
    assert effective_state(_status(running, {"lsn": 1, "snapshot": {"rows": 5}})) \
        == ConnectorState.SNAPSHOTTING
    assert effective_state(_status(running, {"lsn": 1, "incremental": {"pending": ["t"]}})) \
        == ConnectorState.SNAPSHOTTING
    assert effective_state(_status(running, {"lsn": 1})) == running
    assert effective_state(_status(running, None)) == running
    paused = ConnectorState.PAUSED
    assert effective_state(_status(paused, {"snapshot": {"rows": 5}})) == paused


def test_progress_is_shown_only_while_a_source_snapshots() -> None:
    from dataclasses import replace

    running = ConnectorState.RUNNING
    initial = replace(_status(running, {"snapshot": {"rows": 5}}),
                      progress=("snapshot public.t", 5, 10))
    assert current_progress(initial) == ("snapshot public.t", 5, 10)
    streaming = replace(_status(running, {"lsn": 9}), progress=("snapshot public.t", 10, 10))
    assert current_progress(streaming) is None
    incremental = replace(
        _status(running, {"lsn": 9, "incremental": {"pending": ["public.u"], "rows": 40}}),
        progress=("snapshot public.t", 10, 10),
    )
    assert current_progress(incremental) == ("incremental snapshot public.u", 40, None)
