"""Which hub process runs a source: one lease per source, held by one process at a time.

Several ``changehub run`` processes may run the same pipeline on the Kafka backend; each
source must still run in exactly one of them (two readers of one replication slot, or two
pollers of one table, would write every change twice). The lease is the way Kafka Connect
hands out its work: a consumer group per source (``_changehub-source.<name>``), subscribed to
the one-partition topic ``__changehub_leases``; the group coordinator gives that partition to
exactly one member, and the member holding it runs the source (:mod:`log.kafka.groups`).
Assignment is cooperative-sticky, so the holder keeps the lease when other processes join.

Fencing covers what a lease alone cannot: a holder that stalled (a long GC-like pause, a
network partition) may not know yet that its session expired and the lease moved. Before the
new holder reads the checkpoint it starts the source's transactional producer
(:meth:`log.kafka.KafkaLog.claim_source`), which fences every earlier producer of the source
and aborts its open transaction; the stale holder's next append fails with
:class:`~hub.errors.SourceFencedError` and it stands by. So no batch of the old holder can
land after the checkpoint the new one starts from, and the log stays exactly once.

A scheduled batch sink (``schedule:``) is leased the same way (group
``_changehub-export.<name>``): its exports run in one process (:mod:`hub.leased_export`).

Why not a PostgreSQL advisory lock: it serves only postgres sources, it is held by a
connection whose death the server notices only when TCP does (minutes, for a partitioned
holder, with default keepalives), and it fences nothing in the log.

Timeouts: a holder that stops cleanly (SIGTERM, ``changehub`` exits) leaves the group and
another process has the source within a second or two; a holder killed with SIGKILL, or cut
off, loses the lease when its session expires (``session.timeout.ms``, 6 s by default,
settable in ``log.kafka.config``), and the next process runs the source a rebalance later,
typically 7-10 s after the death. On the embedded log there is no lease: the log directory's
lock already keeps a second process out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from hub.state import ConnectorState
from log.api import Log, TopicPartition
from log.kafka.groups import lease_group

if TYPE_CHECKING:
    from hub.worker import Worker
    from log.kafka.backend import KafkaLog

__all__ = ["Lease", "lease_for", "show_lease_state"]

log = logging.getLogger("changehub.leader")

JOIN_WAIT_S = 0.2  # how long a process without the lease waits in the group per step


Kind = Literal["source", "export"]


class Lease:
    """This process's claim on one source (or scheduled export). Used by the connector's
    worker thread only."""

    def __init__(
        self, log_: KafkaLog, name: str, on_lose: Callable[[], None], kind: Kind = "source"
    ) -> None:
        self._log = log_
        self.name = name
        self.kind = kind
        self._on_lose = on_lose
        self._held = False
        self._said_standby = False
        self._member = log_.lease(
            lease_group(kind, name),
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._revoked,
        )

    @property
    def decided(self) -> bool:
        """The group has answered once: :meth:`check` is no longer a guess."""
        return self._member.rebalanced

    def check(self, wait: bool) -> bool:
        """Serve the group (``wait``: up to a moment for news) and say whether we hold it."""
        self._member.poll(JOIN_WAIT_S if wait else 0.0)
        if self.decided and not self._held and not self._said_standby:
            self._said_standby = True
            log.info("%s %s: standing by, another process runs it", self.kind, self.name)
        return self._held

    def state(self) -> ConnectorState:
        """What the connector shows: RUNNING while this process holds the lease, STANDBY
        once the group gave it to another process, STARTING until the group answered."""
        if self._held:
            return ConnectorState.RUNNING
        return ConnectorState.STANDBY if self.decided else ConnectorState.STARTING

    def claim(self) -> None:
        """Say so, and for a source fence every earlier writer of it: call before reading
        its checkpoint."""
        if self.kind == "source":
            self._log.claim_source(self.name)
        self._said_standby = False
        log.info("%s %s: this process holds its lease and runs it", self.kind, self.name)

    def release(self) -> None:
        """Leave the group: another process gets the lease at once."""
        self._held = False
        self._member.close()

    def _assigned(self, tps: list[TopicPartition]) -> None:
        if tps:
            self._held = True

    def _revoked(self, tps: list[TopicPartition]) -> None:
        if tps and self._held:
            self._held = False
            # stop before the group hands the lease on (it waits for this callback)
            self._on_lose()


def show_lease_state(worker: Worker, lease: Lease) -> None:
    """Bring a running worker's state in line with its lease (RUNNING / STANDBY); call from
    its step, after :meth:`Lease.check`."""
    state = lease.state()
    if worker.status.state != state:
        worker._transition(state)


def lease_for(
    log_: Log, name: str, on_lose: Callable[[], None], kind: Kind = "source"
) -> Lease | None:
    """A lease on connector ``name`` on the Kafka backend; None on the embedded one (see the
    module doc)."""
    from log.kafka.backend import KafkaLog

    if isinstance(log_, KafkaLog):
        return Lease(log_, name, on_lose, kind)
    return None
