"""What the security tests ask of a running :class:`hub.runtime.Hub`: a connector's status,
and a wait for a condition with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

from hub.runtime import Hub
from hub.state import ConnectorStatus

__all__ = ["status", "wait_for"]


def status(hub: Hub, name: str) -> ConnectorStatus:
    return next(s for s in hub.statuses() if s.name == name)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)  # a condition polled with a deadline
