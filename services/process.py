"""Detached server processes: start, recognise after a restart of the caller, wait on, stop.

A server outlives the ``services/run up`` that started it, so it is remembered by pid plus
its start time in clock ticks (field 22 of ``/proc/<pid>/stat``): a pid alone may have been
reused by an unrelated process by the time ``down`` runs, and we must never signal that.
Each server runs in its own session, so its process group id is its pid and a last-resort
SIGKILL reaches every child it forked (postgres backends, for instance).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.errors import ServiceError

__all__ = [
    "ProcessRef",
    "ReadyCheck",
    "RunAs",
    "free_port",
    "port_is_free",
    "spawn",
    "stop",
    "tail",
    "tcp_answers",
    "wait_gone",
    "wait_until",
]

POLL_INTERVAL = 0.2

#: A health check: True once the server answers.
ReadyCheck = Callable[[], bool]

# Popen objects of children started by this process, kept so that they are reaped (and not
# reported as zombies by ProcessRef.alive) while the starter still runs.
_children: list[subprocess.Popen[bytes]] = []


@dataclass(frozen=True)
class _Stat:
    state: str
    pgrp: int
    start_ticks: int

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def _stat(pid: int) -> _Stat | None:
    """What /proc says about ``pid``: None once the pid is gone (a zombie is not gone)."""
    for child in _children:
        child.poll()
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return _Stat(state=fields[0], pgrp=int(fields[2]), start_ticks=int(fields[19]))


@dataclass(frozen=True)
class ProcessRef:
    """A process started by ``services``: pid, start time, and the signal that stops it cleanly.

    It leads its own process group (its session), and everything it forks stays in it.
    """

    pid: int
    start_ticks: int
    stop_signal: int = signal.SIGTERM

    def alive(self) -> bool:
        """Running (not a zombie), and the very process we started."""
        stat = _stat(self.pid)
        return stat is not None and not stat.zombie and stat.start_ticks == self.start_ticks

    def gone(self) -> bool:
        """No trace left: not even a zombie still holds the pid (servers that lock their data
        directory with a pid file, as postgres does, take a zombie for a live owner)."""
        stat = _stat(self.pid)
        return stat is None or stat.start_ticks != self.start_ticks

    def group(self) -> list[int]:
        """Live processes of its group, the leader too if it still runs. Children forked by
        the leader started after it; a pid reused later could not be in this group while the
        group still had members, so pgrp plus start time is safe even after the leader died."""
        members = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            stat = _stat(int(entry.name))
            if (
                stat is not None
                and not stat.zombie
                and stat.pgrp == self.pid
                and stat.start_ticks >= self.start_ticks
            ):
                members.append(int(entry.name))
        return members

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill_group(self) -> None:
        for pid in self.group():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "start_ticks": self.start_ticks, "stop_signal": self.stop_signal}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRef:
        return cls(int(data["pid"]), int(data["start_ticks"]), int(data["stop_signal"]))


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account a server must run as when ``services`` runs as root."""

    user: str

    def popen_kwargs(self) -> dict[str, Any]:
        # Same effect as `runuser -u USER --`, without a runuser process between us and the
        # server: the pid we record is the server's own, so signals reach it directly.
        if os.geteuid() != 0:
            return {}
        return {"user": self.user, "group": self.user, "extra_groups": []}

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), text=True, capture_output=True, check=False, **self.popen_kwargs(), **kwargs
        )


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    run_as: RunAs | None = None,
    stop_signal: int = signal.SIGTERM,
) -> ProcessRef:
    """Start ``argv`` detached (own session, no terminal), output appended to ``log_path``."""
    with log_path.open("ab") as log:
        try:
            child = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **(run_as.popen_kwargs() if run_as else {}),
            )
        except OSError as exc:
            raise ServiceError(f"cannot start {argv[0]}: {exc}") from exc
    _children.append(child)
    stat = _stat(child.pid)
    if stat is None or stat.zombie:
        child.wait()
        raise ServiceError(
            f"{argv[0]} exited at once with status {child.returncode}; "
            f"its output is in {log_path}:\n{tail(log_path)}"
        )
    return ProcessRef(child.pid, stat.start_ticks, stop_signal)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    what: str,
    ready: ReadyCheck,
    *,
    timeout: float,
    processes: Sequence[ProcessRef],
    logs: Sequence[Path],
) -> None:
    """Poll ``ready`` until it is true; fail fast if a server process dies, or at the deadline.

    ``logs[i]`` is the log of ``processes[i]``: a failure quotes the log that explains it.
    """
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        for proc, log in zip(processes, logs, strict=True):
            if not proc.alive():
                raise ServiceError(
                    f"{what}: the server process (pid {proc.pid}) exited before it was ready. "
                    f"Last lines of {log}:\n{tail(log)}"
                )
        if time.monotonic() >= deadline:
            tails = "\n".join(f"Last lines of {log}:\n{tail(log, 15)}" for log in logs)
            raise ServiceError(f"{what}: not ready after {timeout:.0f} s.\n{tails}")
        time.sleep(POLL_INTERVAL)


def stop(processes: Sequence[ProcessRef], *, timeout: float = 30.0) -> None:
    """Ask each process to stop with its own signal; after ``timeout``, SIGKILL whatever is
    left of its process group (also when the leader died and left children behind)."""
    for p in processes:
        p.signal(p.stop_signal)
    deadline = time.monotonic() + timeout
    while any(p.alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
    deadline = time.monotonic() + 10.0
    while True:
        left = [pid for p in processes for pid in p.group()]
        if not left:
            return
        if time.monotonic() >= deadline:
            pids = ", ".join(map(str, left))
            raise ServiceError(f"processes {pids} survived SIGKILL for 10 s; check them with ps")
        for p in processes:
            p.kill_group()
        time.sleep(POLL_INTERVAL)


def wait_gone(processes: Sequence[ProcessRef], *, timeout: float = 15.0) -> None:
    """Wait until not even a zombie of ``processes`` is left (init reaps them a bit later)."""
    deadline = time.monotonic() + timeout
    while not all(p.gone() for p in processes):
        if time.monotonic() >= deadline:
            pids = ", ".join(str(p.pid) for p in processes if not p.gone())
            raise ServiceError(f"processes {pids} were not reaped within {timeout:.0f} s")
        time.sleep(POLL_INTERVAL)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if a server could listen on the port now. SO_REUSEADDR as servers use it: the
    TIME_WAIT connections a stopped server leaves behind do not make its port busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", avoid: Sequence[int] = ()) -> int:
    """A port nobody listens on right now (the kernel's pick), not one of ``avoid``."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port


def tcp_answers(port: int, host: str = "127.0.0.1") -> bool:
    """True once something accepts TCP connections on the port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
