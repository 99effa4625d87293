"""Group membership on Kafka: several hub processes share partitions, or elect one holder.

A :class:`GroupMember` is one librdkafka consumer that *subscribes* (joins a consumer group),
so that the group coordinator on the cluster decides which process holds which partition.
It never reads records: every partition it is given is paused at once, and reading goes
through the log's own readers (:mod:`log.kafka.consumer`) at the positions the hub chooses.
It is used twice:

* sink scale-out: the group is the sink's own (the group its offsets are committed under),
  subscribed to the sink's topics; each process gets a share of the partitions. Commits go
  through the member, with its generation, so Kafka refuses a commit from a process that
  lost the partition in a rebalance.
* leadership: one group per source, ``_changehub-source.<name>`` (and per scheduled batch
  sink, ``_changehub-export.<name>``), subscribed to the one-partition topic
  ``__changehub_leases``; the process holding that partition runs the connector
  (:mod:`hub.leader`).

Assignment is ``cooperative-sticky`` (KIP-429): a process that joins or leaves moves only the
partitions that must move; the others keep working through the rebalance, and a source's
holder keeps it when another process joins.

Callbacks run inside :meth:`GroupMember.poll`, on the caller's thread. ``on_revoke`` runs
before the partitions are handed to anyone else (the coordinator waits for it), which is where
a sink flushes and commits; ``on_lost`` says the partitions are already someone else's (the
session expired), so nothing may be committed for them.

Timeouts (the defaults below; ``log.kafka.config`` may override any of them):

* ``session.timeout.ms`` 6000: a killed process's partitions move after about 6 s (the
  broker's ``group.min.session.timeout.ms`` is 6000 by default, so this is the least it
  allows). librdkafka heartbeats from its own thread every ``heartbeat.interval.ms`` (1000).
* ``max.poll.interval.ms`` 300000: a process that does not call :meth:`poll` for 5 minutes is
  considered stuck and leaves the group. The hub polls between steps and while paused.

Thread-safety: one thread per member (the worker that owns it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from log.api import TopicPartition
from log.kafka.errors import error_code, log_error

__all__ = ["LEASE_TOPIC", "GroupMember", "lease_group", "member_config"]

_log = logging.getLogger(__name__)

LEASE_TOPIC = "__changehub_leases"

Callback = Callable[[list[TopicPartition]], None]


def lease_group(kind: str, name: str) -> str:
    """The consumer group whose one partition is the lease on connector ``name`` (``kind``:
    source, or export for a scheduled batch sink)."""
    return f"_changehub-{kind}.{name}"


def member_config(client_config: Mapping[str, Any], group: str) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 300_000,
    }
    conf.update(client_config)
    conf.update(
        {
            "group.id": group,
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # nothing is fetched (the partitions are paused); no reset may raise an error
            "auto.offset.reset": "latest",
            "allow.auto.create.topics": False,
            "enable.partition.eof": False,
            "isolation.level": "read_committed",
        }
    )
    return conf


def _tps(parts: Sequence[Any]) -> list[TopicPartition]:
    return sorted(TopicPartition(p.topic, p.partition) for p in parts)


class GroupMember:
    """One process's membership of a consumer group. See the module doc."""

    def __init__(
        self,
        client_config: Mapping[str, Any],
        bootstrap: str,
        group: str,
        *,
        on_assign: Callback,
        on_revoke: Callback,
        on_lost: Callback,
        timeout: float = 30.0,
    ) -> None:
        from confluent_kafka import Consumer

        self.group = group
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._on_lost = on_lost
        self._consumer = Consumer(member_config(client_config, group))
        self._topics: tuple[str, ...] = ()
        self._assigned: set[TopicPartition] = set()
        self.rebalanced = False  # the coordinator answered once: the assignment is known
        self._closed = False

    # -- membership --------------------------------------------------------------------------

    def subscribe(self, topics: Sequence[str]) -> None:
        """Join (or change the topics of) the group; a no-op when the topics are the same."""
        wanted = tuple(sorted(set(topics)))
        if wanted == self._topics:
            return
        self._topics = wanted
        if not wanted:
            # an empty subscription is not allowed: leave until there is something to share
            self._consumer.unsubscribe()
            return
        self._consumer.subscribe(
            list(wanted),
            on_assign=self._assigned_cb,
            on_revoke=self._revoked_cb,
            on_lost=self._lost_cb,
        )

    @property
    def subscribed(self) -> bool:
        return bool(self._topics)

    def poll(self, timeout: float = 0.0) -> None:
        """Serve the group: heartbeats run by themselves, rebalance callbacks run here."""
        msg = self._consumer.poll(timeout)
        err = None if msg is None else msg.error()
        if err is not None:
            if err.fatal():
                from confluent_kafka import KafkaException

                raise log_error(KafkaException(err), f"group {self.group!r}", self.bootstrap)
            _log.debug("group %s: %s (retried by the client)", self.group, err.str())

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(self._assigned)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> bool:
        """Commit the next offsets to read, as a member of the group's current generation.

        False (and a warning) when Kafka refused: a rebalance is under way or the partitions
        have moved. The caller keeps the offsets and commits them later, or leaves them to
        the new holder, which replays from the last commit (the sinks are idempotent).
        """
        from confluent_kafka import KafkaException
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        parts = [KafkaTopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        if not parts:
            return True
        try:
            answer = self._consumer.commit(offsets=parts, asynchronous=False)
        except KafkaException as e:
            err = error_code(e)
            if err is not None and err.fatal():
                what = f"committing offsets of group {self.group!r}"
                raise log_error(e, what, self.bootstrap) from e
            _log.warning("group %s: commit refused (%s); kept for later", self.group, e)
            return False
        failed = [f"{p.topic}[{p.partition}]: {p.error}" for p in answer or () if p.error]
        if failed:
            _log.warning(
                "group %s: commit refused for %s; kept for later", self.group, ", ".join(failed)
            )
            return False
        return True

    def close(self) -> None:
        """Leave the group (its partitions go to the other members at once)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._consumer.close()
        except Exception as e:  # closing must not hide the caller's error
            _log.debug("group %s: error while leaving: %s", self.group, e)

    # -- librdkafka's rebalance callbacks ----------------------------------------------------

    def _assigned_cb(self, consumer: Any, parts: list[Any]) -> None:
        consumer.incremental_assign(parts)
        if parts:
            consumer.pause(parts)  # membership only: the log's readers fetch the records
        tps = _tps(parts)
        self._assigned.update(tps)
        self.rebalanced = True
        if tps:
            _log.info("group %s: assigned %s", self.group, ", ".join(map(str, tps)))
        self._on_assign(tps)

    def _revoked_cb(self, consumer: Any, parts: list[Any]) -> None:
        tps = _tps(parts)
        if tps:
            _log.info("group %s: giving up %s", self.group, ", ".join(map(str, tps)))
        try:
            self._on_revoke(tps)
        finally:
            self._assigned.difference_update(tps)
            consumer.incremental_unassign(parts)

    def _lost_cb(self, consumer: Any, parts: list[Any]) -> None:
        tps = _tps(parts)
        _log.warning(
            "group %s: lost %s (the session expired; another process holds them now)",
            self.group,
            ", ".join(map(str, tps)),
        )
        self._assigned.difference_update(tps)
        try:
            self._on_lost(tps)
        finally:
            consumer.incremental_unassign(parts)
