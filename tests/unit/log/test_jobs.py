from __future__ import annotations

import threading
import time

from log.jobs import PeriodicJob


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
