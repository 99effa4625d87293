"""A scheduled batch export in a scaled-out pipeline: it runs in one process at a time.

Several hub processes running the same pipeline on Kafka would otherwise each run every
scheduled export (:mod:`hub.schedule`): the same files written twice at once, and one run's
clean-up deleting the other's files in progress. The export takes a lease like a source does
(:mod:`hub.leader`, group ``_changehub-export.<name>``); the process holding it keeps the
schedule, the others stand by and take over when it dies or stops. The schedule's state (the
last fire time) is each process's own file, so a process that takes over with
``misfire: catch_up`` runs a fire time it has not seen itself: an export runs from the
committed offsets, so a repeated one writes only what is new (or nothing).

On the embedded log there is one process and no lease: it behaves as
:class:`~hub.schedule.ScheduledExportWorker`.
"""

from __future__ import annotations

from typing import Any

from hub.leader import Lease, lease_for, show_lease_state
from hub.schedule import ScheduledExportWorker
from hub.state import ConnectorState

__all__ = ["LeasedExportWorker"]


class LeasedExportWorker(ScheduledExportWorker):
    """See the module doc."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lease: Lease | None = None
        self._scheduled = False  # this process holds the lease and opened the schedule

    def open(self) -> None:
        self._scheduled = False
        self._lease = lease_for(self._log, self.status.name, self._lost, kind="export")
        if self._lease is None:
            super().open()
            self._scheduled = True

    def step(self) -> None:
        lease = self._lease
        if lease is not None:
            held = lease.check(wait=not self._scheduled)
            show_lease_state(self, lease)  # STANDBY while another process keeps the schedule
            if not held:
                self._scheduled = False
                return
            if not self._scheduled:
                lease.claim()
                super().open()
                self._scheduled = True
        super().step()  # waits a second at most before the lease is checked again

    def active_state(self) -> ConnectorState:
        return ConnectorState.RUNNING if self._lease is None else self._lease.state()

    def tick_paused(self) -> None:
        if self._lease is not None:
            self._lease.check(wait=False)

    def close(self, graceful: bool) -> None:
        lease, self._lease = self._lease, None
        try:
            super().close(graceful)
        finally:
            if lease is not None:
                lease.release()

    def _lost(self) -> None:
        # called between steps (inside the lease check), never during an export
        self._scheduled = False
