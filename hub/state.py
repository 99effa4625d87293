"""Connector states and the status record the runtime, CLI and API share.

Thread-safe: a worker thread updates its status while API/CLI threads read snapshots.
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = ["ConnectorState", "ConnectorStatus", "StatusCell"]


class ConnectorState(enum.Enum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SNAPSHOTTING = "SNAPSHOTTING"
    PAUSED = "PAUSED"
    # scale-out on Kafka: another hub process holds this connector's lease (a source, or a
    # scheduled export) and runs it; this one is healthy and takes over when that one goes
    STANDBY = "STANDBY"
    RETRYING = "RETRYING"  # a transient error; backing off before the next attempt
    FAILED = "FAILED"  # a fatal error; needs a restart after the cause is fixed
    STOPPED = "STOPPED"


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    kind: Literal["source", "sink"]
    type: str
    state: ConnectorState = ConnectorState.STARTING
    error: str | None = None
    since: float = field(default_factory=time.time)
    records: int = 0  # records moved since start (source: into the log; sink: into target)
    retries: int = 0
    dead_letters: int = 0
    checkpoint: dict[str, Any] | None = None  # sources: last durable checkpoint
    progress: tuple[str, int, int | None] | None = None  # long work: what, done, total


class StatusCell:
    """Holds one connector's status; updates are atomic replacements under a lock."""

    def __init__(self, status: ConnectorStatus) -> None:
        self._lock = threading.Lock()
        self._status = status

    def get(self) -> ConnectorStatus:
        with self._lock:
            return self._status

    def update(self, **changes: Any) -> ConnectorStatus:
        with self._lock:
            if "state" in changes and changes["state"] != self._status.state:
                changes.setdefault("since", time.time())
            self._status = replace(self._status, **changes)
            return self._status

    def add(self, *, records: int = 0, retries: int = 0, dead_letters: int = 0) -> None:
        with self._lock:
            s = self._status
            self._status = replace(
                s,
                records=s.records + records,
                retries=s.retries + retries,
                dead_letters=s.dead_letters + dead_letters,
            )
