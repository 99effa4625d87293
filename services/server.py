"""What every server module provides, and the directory a server is started in.

A server module subclasses :class:`Server`: it says what is missing, installs it, and starts
the server in a :class:`Home` (its own directory under ``--dir``), returning the ``KEY=VALUE``
facts clients need. Everything else (locking, state files, reuse of a running server, stop
on failure) is done once in :mod:`services.control`.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from services import process
from services.errors import ServiceUsageError
from services.process import ProcessRef, RunAs
from services.state import ServerState

__all__ = ["Home", "Options", "Server"]


@dataclass(frozen=True)
class Options:
    """Command-line options of ``up``; each server reads the ones that apply to it."""

    port: int | None = None
    brokers: int = 1
    tls: bool = False  # serve TLS with a certificate from a throw-away CA (services/tls.py)


class Home:
    """A server's directory (``DIR/<name>``), its ports, and the processes started in it."""

    def __init__(self, path: Path, state: ServerState, main_port: str, requested: int | None):
        self.path = path
        self.state = state
        self._main_port = main_port
        self._requested = requested
        self._previous = dict(state.ports)
        self._logs: dict[int, Path] = {}
        state.ports = {}

    @property
    def processes(self) -> list[ProcessRef]:
        return self.state.processes

    def port(self, role: str) -> int:
        """The port for ``role``: ``--port`` for the main one, else the previous one if still
        free (a restarted server keeps its address), else a free one."""
        if role in self.state.ports:
            return self.state.ports[role]
        taken = list(self.state.ports.values())
        if role == self._main_port and self._requested is not None:
            port = self._requested
        elif (
            role in self._previous
            and self._previous[role] not in taken
            and process.port_is_free(self._previous[role])
        ):
            port = self._previous[role]
        else:
            port = process.free_port(avoid=taken)
        self.state.ports[role] = port
        return port

    def log(self, name: str = "server") -> Path:
        return self.path / f"{name}.log"

    def spawn(
        self,
        argv: Sequence[str],
        *,
        log_name: str = "server",
        env: dict[str, str] | None = None,
        run_as: RunAs | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> ProcessRef:
        """Start a detached server process and record it in the state file at once."""
        ref = process.spawn(
            argv,
            log_path=self.log(log_name),
            cwd=self.path,
            env=env,
            run_as=run_as,
            stop_signal=stop_signal,
        )
        self.state.processes.append(ref)
        self._logs[ref.pid] = self.log(log_name)
        self.state.running = True
        self.state.save(self.path)
        return ref

    def wait_until_ready(self, what: str, ready: process.ReadyCheck, *, timeout: float) -> None:
        """Poll ``ready`` with a deadline, failing at once if a process of this start dies."""
        process.wait_until(
            what,
            ready,
            timeout=timeout,
            processes=self.processes,
            logs=[self._logs[p.pid] for p in self.processes],
        )

    def give_to(self, run_as: RunAs, *paths: Path) -> None:
        """Make ``paths`` owned by the server's account, and its directories reachable by it."""
        if os.geteuid() != 0:
            return
        for directory in (self.path.parent, self.path):
            mode = directory.stat().st_mode
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
        for path in paths:
            os.chown(path, *_ids(run_as.user))
            if path.is_dir():
                for child in path.rglob("*"):
                    os.chown(child, *_ids(run_as.user), follow_symlinks=False)


def _ids(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


class Server(ABC):
    """One kind of server: how to tell it is installed, install it, and start it."""

    name: ClassVar[str]
    #: The port role that ``--port`` sets.
    main_port: ClassVar[str] = "port"
    #: Whether ``--tls`` is supported (see services/tls.py).
    serves_tls: ClassVar[bool] = False
    #: Debian packages it needs; ``install-all`` installs them in one apt run.
    apt_packages: ClassVar[tuple[str, ...]] = ()
    #: How long a clean stop may take before the process group gets SIGKILL.
    stop_timeout: ClassVar[float] = 30.0

    @abstractmethod
    def missing(self) -> list[str]:
        """What is not installed yet, one readable item each; empty when ready to start."""

    @abstractmethod
    def install(self) -> None:
        """Install what :meth:`missing` reports (a no-op when nothing is missing)."""

    @abstractmethod
    def start(self, home: Home, options: Options) -> dict[str, str]:
        """Start the server in ``home``, wait until it answers, return its ``KEY=VALUE`` facts."""

    def check_options(self, options: Options) -> None:
        """Reject options this server does not support; only Kafka runs several nodes."""
        if options.brokers != 1:
            raise ServiceUsageError(f"--brokers is for kafka only; {self.name} runs one node")
        if options.tls and not self.serves_tls:
            raise ServiceUsageError(f"--tls is not supported for {self.name}")
