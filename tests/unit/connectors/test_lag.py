"""DurableTime: the commit time of the last durable change, looked up by position."""

from __future__ import annotations

from connectors.lag import DurableTime


def test_committed_takes_the_time_of_the_last_batch_at_or_before_its_position() -> None:
    t = DurableTime()
    assert t.seconds_behind(10_000) is None  # nothing durable yet
    t.shipped(10, 1_000, True)
    t.shipped(20, 2_000, True)
    t.shipped(30, 3_000, False)
    assert t.unsaved
    t.committed(20)
    assert t.ts_ms == 2_000
    assert t.unsaved is False  # the heartbeat batch at 30 carries no change
    assert t.seconds_behind(5_000) == 3.0
    t.committed(30)
    assert t.ts_ms == 3_000


def test_seconds_behind_never_negative() -> None:
    assert DurableTime(5_000).seconds_behind(4_000) == 0.0
