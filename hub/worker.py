"""One supervised thread per connector: start, loop, retry transient errors, fail on fatal ones.

The supervision rules, in one place:

* :class:`~hub.errors.RetriableError` (and ``OSError``/``ConnectionError`` that escaped a
  connector): tear the connector down, back off (exponential, jittered, capped), start it
  again from the durable state (a source's last checkpoint, a sink's committed offsets).
  Nothing unflushed survives a retry, so nothing is half-applied: the replay is what makes
  it exactly right.
* Anything else: the connector goes to FAILED with the error; the rest of the hub runs on.
* ``stop()``: the loop finishes its current step (a source's batch is appended with its
  checkpoint or not at all; a sink flushes and commits), then the thread ends.
* ``pause()``/``resume()``: the loop idles between steps without tearing anything down.
"""

from __future__ import annotations

import logging
import threading
import traceback
from abc import ABC, abstractmethod

from hub.backoff import Backoff
from hub.errors import ChangehubError, RetriableError
from hub.secrets import mask
from hub.state import ConnectorState, ConnectorStatus, StatusCell

__all__ = ["Worker"]

log = logging.getLogger("changehub.worker")

PAUSED_TICK_S = 0.5


class Worker(threading.Thread, ABC):
    """Subclasses implement :meth:`open`, :meth:`step` and :meth:`close`."""

    def __init__(self, status: ConnectorStatus, backoff: Backoff | None = None) -> None:
        super().__init__(name=f"{status.kind}:{status.name}", daemon=True)
        self.cell = StatusCell(status)
        self.backoff = backoff or Backoff()
        self.stopping = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()

    # -- what subclasses provide ----------------------------------------------------------

    @abstractmethod
    def open(self) -> None:
        """Build and start the connector from durable state."""

    @abstractmethod
    def step(self) -> None:
        """Do one bounded unit of work (returns within about a second when idle)."""

    @abstractmethod
    def close(self, graceful: bool) -> None:
        """Release the connector. ``graceful``: flush and commit first (a normal stop)."""

    def interrupt(self) -> None:
        """Called from another thread on stop, to break a blocking call. Optional."""

    def active_state(self) -> ConnectorState:
        """The state of an opened, unpaused connector: RUNNING; a leased one (scale-out on
        Kafka) is STANDBY while another process holds its lease. Optional."""
        return ConnectorState.RUNNING

    def tick_paused(self) -> None:
        """Called on the worker's thread about every half second while it is paused, to keep
        up what must not wait for a resume (a Kafka group membership). Optional."""

    # -- control, from any thread ---------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()
        self._resumed.set()
        self.interrupt()

    def pause(self) -> None:
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    @property
    def status(self) -> ConnectorStatus:
        return self.cell.get()

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        name = self.status.name
        while not self.stopping.is_set():
            try:
                self._transition(ConnectorState.STARTING)
                self.open()
                self._transition(self.active_state(), error=None)
                while not self.stopping.is_set():
                    if not self._resumed.is_set():
                        self._transition(ConnectorState.PAUSED)
                        while not self._resumed.wait(PAUSED_TICK_S):
                            self.tick_paused()
                        if self.stopping.is_set():
                            break
                        self._transition(self.active_state())
                    self.step()
                self.close(graceful=True)
                self._transition(ConnectorState.STOPPED)
                return
            except Exception as exc:
                message = mask(_describe(exc))
                self._close_quietly()
                if self.stopping.is_set():
                    self._transition(ConnectorState.STOPPED, error=message)
                    return
                if isinstance(exc, RetriableError | ConnectionError | TimeoutError) or (
                    isinstance(exc, OSError) and not isinstance(exc, ChangehubError)
                ):
                    delay = self.backoff.next_delay()
                    self.cell.add(retries=1)
                    self._transition(ConnectorState.RETRYING, error=message)
                    log.warning("%s: %s; retrying in %.1fs", name, message, delay)
                    if self.stopping.wait(delay):
                        self._transition(ConnectorState.STOPPED, error=message)
                        return
                    continue
                if not isinstance(exc, ChangehubError):
                    log.error("%s: unexpected error\n%s", name, mask(traceback.format_exc()))
                self._transition(ConnectorState.FAILED, error=message)
                return

    def _close_quietly(self) -> None:
        try:
            self.close(graceful=False)
        except Exception as exc:
            log.debug("%s: error while closing after a failure: %s", self.status.name, exc)

    def _transition(self, state: ConnectorState, **changes: object) -> None:
        before = self.status.state
        after = self.cell.update(state=state, **changes)
        if before != state:
            failed = after.error and state != ConnectorState.RUNNING
            extra = f" error={after.error}" if failed else ""
            logging.getLogger("changehub.state").info(
                "%s %s %s -> %s%s",
                after.kind,
                after.name,
                before.value,
                state.value,
                extra,
                extra={"connector": after.name, "state": state.value},
            )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ChangehubError) else f"{type(exc).__name__}: {text}"
