"""Hub processes for the scale-out tests: ``changehub run`` in a subprocess, each in its own
working directory (so relative paths, such as a batch sink's, are its own), its log in a file
the test reads to see what the process did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DEADLINE_S = 120.0  # generous: the suite runs on a loaded 2-core machine


def wait_until(condition: Callable[[], object], what: str, deadline_s: float = DEADLINE_S) -> float:
    """Poll ``condition`` (a look at a process's log, the index, the files) until it holds;
    return the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > deadline_s:
            raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(0.1)  # nothing to block on: another process's progress, polled
    return time.monotonic() - start


class Hub:
    """One ``changehub run CONFIG`` process."""

    def __init__(self, name: str, config: Path, cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        cwd.mkdir(parents=True, exist_ok=True)
        self.cwd = cwd
        self.log_path = cwd / "hub.log"
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "run", str(config)],
                cwd=cwd,
                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdout=subprocess.DEVNULL,
                stderr=out,
            )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def says(self, fragment: str) -> int:
        """How many times the process logged ``fragment`` so far."""
        return self.text().count(fragment)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        assert self.alive(), f"hub {self.name} exited:\n{self.text()[-4000:]}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM (a clean stop: flush, commit, leave the groups); the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise AssertionError(f"hub {self.name} did not stop:\n{self.text()[-4000:]}") from None

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=30)
