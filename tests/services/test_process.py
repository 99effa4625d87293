"""services.process: detached processes are recognised safely and always stopped."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from services.errors import ServiceError
from services.process import ProcessRef, free_port, port_is_free, spawn, stop, wait_until

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', "
    "flush=True); time.sleep(600)"
)


def _spawn(tmp_path: Path, code: str) -> ProcessRef:
    return spawn([sys.executable, "-c", code], log_path=tmp_path / "p.log", cwd=tmp_path)


def test_stop_kills_a_process_that_ignores_its_stop_signal(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, IGNORES_SIGTERM)
    wait_until(
        "child",
        lambda: "ready" in (tmp_path / "p.log").read_text(),
        timeout=30,
        processes=[proc],
        logs=[tmp_path / "p.log"],
    )
    stop([proc], timeout=0.5)
    assert not proc.alive()


def test_a_reused_pid_with_another_start_time_is_not_taken_for_ours(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "import time; time.sleep(600)")
    impostor = ProcessRef(proc.pid, proc.start_ticks + 1, signal.SIGKILL)
    assert proc.alive()
    assert not impostor.alive()
    stop([impostor], timeout=0.5)
    assert proc.alive()
    stop([proc], timeout=10)
    assert not proc.alive()


def test_waiting_fails_fast_with_the_log_when_the_server_dies(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "print('bad config: no such table', flush=True); raise SystemExit(3)")
    with pytest.raises(ServiceError, match="bad config: no such table"):
        wait_until("child", lambda: False, timeout=60, processes=[proc], logs=[tmp_path / "p.log"])


def test_waiting_gives_up_at_the_deadline(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "import time; time.sleep(600)")
    try:
        with pytest.raises(ServiceError, match="not ready after"):
            wait_until(
                "child", lambda: False, timeout=0.5, processes=[proc], logs=[tmp_path / "p.log"]
            )
    finally:
        stop([proc], timeout=10)


def test_free_port_is_free() -> None:
    assert port_is_free(free_port())


def test_stop_kills_the_children_a_crashed_leader_left_behind(tmp_path: Path) -> None:
    code = (
        "import subprocess, time; c = subprocess.Popen(['sleep', '600']); "
        "print(c.pid, flush=True); time.sleep(600)"
    )
    leader = _spawn(tmp_path, code)
    log = tmp_path / "p.log"
    wait_until(
        "child", lambda: log.read_text().strip() != "", timeout=30, processes=[leader], logs=[log]
    )
    orphan = int(log.read_text().split()[0])
    os.kill(leader.pid, signal.SIGKILL)
    wait_until("leader death", lambda: not leader.alive(), timeout=30, processes=[], logs=[])
    assert orphan in leader.group()

    stop([leader], timeout=1)

    assert leader.group() == []
