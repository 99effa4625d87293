"""Sink group offsets as Kafka consumer-group offsets.

A sink group is a Kafka consumer group of the same name; its committed offsets live in
``__consumer_offsets`` like any consumer's, so Kafka's own tools (``kafka-consumer-groups``)
show and reset them. Kafka accepts these commits only while the group has no active
members: a running hub joins its sinks' groups (:mod:`log.kafka.groups`) and commits through
its membership, so these calls serve the CLI (``offsets``, ``reset``) while no hub runs.

Commits and reads go through one consumer per group that never joins it (librdkafka's
"simple consumer" commit), not through the admin API: librdkafka 2.16's admin
``list_consumer_group_offsets`` crashes the process (SIGSEGV in ``rd_kafka_cgrp_op``) when the
group coordinator is still loading, which is the normal state of a fresh cluster. Commits
merge: partitions not named keep their offsets, as in Kafka.

Thread-safe: each group's consumer is used under its own lock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from hub.errors import LogError, UsageError
from log.api import TopicPartition
from log.kafka.admin import TopicAdmin

__all__ = ["KafkaGroupOffsets"]


def _internal(name: str) -> bool:
    return name.startswith(("_changehub", "__"))


class _GroupClient:
    def __init__(self, client_config: Mapping[str, Any], group: str) -> None:
        from confluent_kafka import Consumer

        self.lock = threading.Lock()
        self.consumer = Consumer(
            {
                **client_config,
                "group.id": group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "allow.auto.create.topics": False,
            }
        )


class KafkaGroupOffsets:
    def __init__(self, admin: TopicAdmin, client_config: Mapping[str, Any]) -> None:
        self._admin = admin
        self._config = dict(client_config)
        self._lock = threading.Lock()
        self._clients: dict[str, _GroupClient] = {}

    def _client(self, group: str) -> _GroupClient:
        with self._lock:
            client = self._clients.get(group)
            if client is None:
                client = self._clients[group] = _GroupClient(self._config, group)
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            with c.lock:
                c.consumer.close()

    def commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        if not group:
            raise UsageError("a group name must not be empty")
        if _internal(group):
            raise UsageError(
                f"group names starting with '_changehub' or '__' are reserved: {group!r}"
            )
        for tp, offset in offsets.items():
            if offset < 0:
                raise UsageError(f"cannot commit offset {offset} for {tp} of group {group!r}")
        if not offsets:
            return
        parts = [KafkaTopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        client = self._client(group)

        def commit() -> Any:
            from confluent_kafka import KafkaError, KafkaException

            with client.lock:
                try:
                    return client.consumer.commit(offsets=parts, asynchronous=False)
                except KafkaException as e:
                    err = e.args[0] if e.args else None
                    if getattr(err, "code", lambda: None)() in (
                        KafkaError.UNKNOWN_MEMBER_ID,
                        KafkaError.ILLEGAL_GENERATION,
                        KafkaError.REBALANCE_IN_PROGRESS,
                    ):
                        # Kafka takes commits from outside a group only while it is empty
                        raise UsageError(
                            f"cannot move the offsets of {group!r}: hub processes running "
                            "this sink are members of its consumer group on "
                            f"{self._admin.bootstrap}; stop every hub running the pipeline "
                            "first (a killed one leaves "
                            "the group when its session expires, about 6 s later)"
                        ) from e
                    raise

        answer = self._admin.call(commit, f"committing offsets of group {group!r}")
        for p in answer or ():
            if p.error is not None:
                raise LogError(
                    f"committing {p.topic}[{p.partition}] of group {group!r} on "
                    f"{self._admin.bootstrap} failed: {p.error.str()}"
                )

    def committed(self, group: str) -> dict[TopicPartition, int]:
        """Committed offsets of ``group`` on every partition of every user topic."""
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        a = self._admin
        parts = [
            KafkaTopicPartition(topic, p)
            for topic, n in a.topics().items()
            if not _internal(topic)
            for p in range(n)
        ]
        if not parts:
            return {}
        client = self._client(group)

        def fetch() -> Any:
            with client.lock:
                return client.consumer.committed(parts, timeout=a.timeout)

        answer = a.call(fetch, f"reading offsets of group {group!r}")
        return {
            TopicPartition(p.topic, p.partition): int(p.offset)
            for p in answer
            if p.error is None and p.offset >= 0
        }

    def groups(self) -> list[str]:
        a = self._admin
        answer = a.call(
            lambda: a.client.list_consumer_groups(request_timeout=a.timeout).result(),
            "listing consumer groups",
        )
        if answer.errors:
            raise LogError(
                f"listing consumer groups on {a.bootstrap} failed: "
                + "; ".join(str(e) for e in answer.errors)
            )
        return sorted(g.group_id for g in answer.valid if not _internal(g.group_id))
