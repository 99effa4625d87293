from __future__ import annotations

import threading
import time

from log.api import Record, TopicConfig, TopicPartition
from log.jobs import PeriodicJob
from tests.log.helpers import read_all

from .conftest import FakeClock, OpenLog


def test_a_job_runs_every_interval_and_survives_its_own_errors() -> None:
    runs = []
    done = threading.Event()

    def work() -> None:
        runs.append(time.monotonic())
        if len(runs) == 2:
            raise RuntimeError("boom")
        if len(runs) >= 4:
            done.set()

    job = PeriodicJob("test-job", 0.01, work)
    try:
        assert done.wait(5), "the job stopped running after an error"
    finally:
        job.stop()


def test_stop_returns_without_waiting_for_the_interval() -> None:
    job = PeriodicJob("slow-job", 3600, lambda: None)
    start = time.monotonic()
    job.stop()
    assert time.monotonic() - start < 1


def test_the_log_runs_retention_and_compaction_by_itself(
    open_log: OpenLog, clock: FakeClock
) -> None:
    log = open_log(background_jobs=True, retention_check_interval_ms=20,
                   compaction_interval_ms=20)
    old = TopicPartition("old", 0)
    keyed = TopicPartition("keyed", 0)
    log.create_topic("old", TopicConfig(segment_bytes=1000, retention_ms=60_000))
    log.create_topic("keyed", TopicConfig(cleanup="compact", segment_bytes=1000))
    for i in range(20):
        log.append(old, [Record(b"k", b"v" * 200, clock.ms - 120_000)])
        log.append(keyed, [Record(b"same", b"v%d" % i + b"." * 200)])
    log.append(old, [Record(b"k", b"fresh", clock.ms)])
    deadline = time.monotonic() + 10
    while log.start_offset(old) == 0 or len(read_all(log, keyed)) == 20:
        assert time.monotonic() < deadline, "no background retention or compaction within 10 s"
        time.sleep(0.01)
    assert log.end_offset(old) == 21 and log.end_offset(keyed) == 20
    assert read_all(log, keyed)[-1].value == b"v19" + b"." * 200
