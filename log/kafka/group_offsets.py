"""Sink group offsets as Kafka consumer-group offsets.

A sink group is a Kafka consumer group of the same name; its committed offsets live in
``__consumer_offsets`` like any consumer's, so Kafka's own tools (``kafka-consumer-groups``)
show and reset them. Commits go through the admin API (``AlterConsumerGroupOffsets``), which
Kafka accepts while the group has no active members — the hub commits for its sinks itself
and does not keep group members joined. Commits merge: partitions not named keep their
offsets, as in Kafka.

Thread-safe (librdkafka's admin client is).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.errors import LogError, UsageError
from log.api import TopicPartition
from log.kafka.admin import TopicAdmin

__all__ = ["KafkaGroupOffsets"]


def _internal(group: str) -> bool:
    return group.startswith(("_changehub", "__"))


class KafkaGroupOffsets:
    def __init__(self, admin: TopicAdmin) -> None:
        self._admin = admin

    def commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException
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
        request = ConsumerGroupTopicPartitions(group, parts)
        a = self._admin

        def alter() -> Any:
            futures = a.client.alter_consumer_group_offsets([request], request_timeout=a.timeout)
            return futures[group].result()

        answer = a.call(alter, f"committing offsets of group {group!r}")
        for p in answer.topic_partitions:
            if p.error is not None:
                what = f"committing {p.topic}[{p.partition}] of group {group!r}"
                raise a._fail(KafkaException(p.error), what)

    def committed(self, group: str) -> dict[TopicPartition, int]:
        from confluent_kafka import ConsumerGroupTopicPartitions

        a = self._admin
        request = [ConsumerGroupTopicPartitions(group)]

        def list_offsets() -> Any:
            futures = a.client.list_consumer_group_offsets(request, request_timeout=a.timeout)
            return futures[group].result()

        answer = a.call(list_offsets, f"reading offsets of group {group!r}")
        return {
            TopicPartition(p.topic, p.partition): int(p.offset)
            for p in answer.topic_partitions
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
