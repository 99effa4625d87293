"""Topics on a Kafka cluster: creation from :class:`~log.api.TopicConfig`, metadata, offsets.

A :class:`TopicConfig` maps onto Kafka topic configs one to one::

    partitions              -> num_partitions
    replication_factor      -> replication_factor
    min_insync_replicas     -> min.insync.replicas
    cleanup                 -> cleanup.policy (delete | compact)
    retention_ms / _bytes   -> retention.ms / retention.bytes (None -> -1: no limit)
    segment_bytes / _ms     -> segment.bytes / segment.ms
    delete_retention_ms     -> delete.retention.ms
    min_compaction_lag_ms   -> min.compaction.lag.ms

The broker validates the values (Kafka 4 wants ``segment.bytes`` >= 1 MiB, for example);
what it refuses comes back as a :class:`~hub.errors.UsageError` with the broker's reason.

Offsets are listed with ``isolation_level=read_committed``: the end offset of a partition is
its *last stable offset*, the first offset of the oldest open transaction (or the high
watermark when none is open), which is what a ``read_committed`` reader can reach.

Thread-safe: librdkafka's admin client is; the partition-count cache is guarded by a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from hub.errors import UnknownTopicError, UsageError
from log.api import TopicConfig, TopicPartition
from log.kafka.errors import error_code, log_error

__all__ = ["TopicAdmin", "kafka_topic_configs"]

_READY_POLL_S = 0.05
T = TypeVar("T")


def _TRANSIENT() -> frozenset[Any]:  # noqa: N802 - a constant, built lazily (lazy import)
    from confluent_kafka import KafkaError

    return frozenset(
        {
            KafkaError.NOT_LEADER_FOR_PARTITION,
            KafkaError.LEADER_NOT_AVAILABLE,
            KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
            KafkaError.COORDINATOR_NOT_AVAILABLE,
            KafkaError.NOT_COORDINATOR,
            KafkaError.REQUEST_TIMED_OUT,
            KafkaError._TIMED_OUT,
            KafkaError._TRANSPORT,
            KafkaError._ALL_BROKERS_DOWN,
            KafkaError.FENCED_LEADER_EPOCH,
            KafkaError.UNKNOWN_LEADER_EPOCH,
            KafkaError._WAIT_COORD,
            KafkaError._WAIT_CACHE,
            # "Failed to query partition leaders: No leaders found" while a broker restarts
            KafkaError._NOENT,
        }
    )


def kafka_topic_configs(config: TopicConfig) -> dict[str, str]:
    """The Kafka topic configs for a :class:`TopicConfig` (see the module doc)."""
    return {
        "cleanup.policy": config.cleanup,
        "retention.ms": str(-1 if config.retention_ms is None else config.retention_ms),
        "retention.bytes": str(-1 if config.retention_bytes is None else config.retention_bytes),
        "segment.bytes": str(config.segment_bytes),
        "segment.ms": str(config.segment_ms),
        "delete.retention.ms": str(config.delete_retention_ms),
        "min.compaction.lag.ms": str(config.min_compaction_lag_ms),
        "min.insync.replicas": str(config.min_insync_replicas),
    }


def _topic_config(entries: Mapping[str, Any], partitions: int, replicas: int) -> TopicConfig:
    def value(name: str) -> str:
        return str(entries[name].value)

    def limit(name: str) -> int | None:
        n = int(value(name))
        return None if n < 0 else n

    return TopicConfig(
        partitions=partitions,
        cleanup="compact" if "compact" in value("cleanup.policy") else "delete",
        retention_ms=limit("retention.ms"),
        retention_bytes=limit("retention.bytes"),
        segment_bytes=int(value("segment.bytes")),
        segment_ms=int(value("segment.ms")),
        delete_retention_ms=int(value("delete.retention.ms")),
        min_compaction_lag_ms=int(value("min.compaction.lag.ms")),
        replication_factor=replicas,
        min_insync_replicas=int(value("min.insync.replicas")),
    )


class TopicAdmin:
    """Topic management and offset listing through one librdkafka admin client."""

    def __init__(self, client_config: Mapping[str, Any], bootstrap: str, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.timeout = timeout
        # librdkafka's admin handle is a producer, whose metadata requests would create a
        # missing topic on a broker with auto.create.topics.enable (the default)
        self._lock = threading.Lock()
        self._partitions: dict[str, int] = {}
        self._last_error: str | None = None  # librdkafka's latest complaint (error_cb)
        config: dict[str, Any] = {
            **client_config, "allow.auto.create.topics": False, "error_cb": self._note_error,
        }
        self.client = AdminClient(config)

    def _note_error(self, error: Any) -> None:
        # The only place librdkafka says why no broker answered (a failed TLS handshake, an
        # authentication failure); list_topics itself reports just "transport failure".
        self._last_error = str(error)

    def _fail(self, exc: BaseException, what: str) -> Exception:
        return log_error(exc, what, self.bootstrap)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``, retried while the cluster reports a passing state (leader moving,
        coordinator loading) until the timeout; other errors become log errors."""
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + self.timeout
        pause = _READY_POLL_S
        while True:
            try:
                return fn()
            except KafkaException as e:
                err = error_code(e)
                if err is None or err.code() not in _TRANSIENT() or time.monotonic() > deadline:
                    raise self._fail(e, what) from e
            threading.Event().wait(pause)
            pause = min(pause * 2, 1.0)

    def check_reachable(self) -> None:
        """Raise LogStorageError naming the bootstrap servers if no broker answers."""
        from confluent_kafka import KafkaException

        try:
            self.client.list_topics(timeout=self.timeout)
        except KafkaException as e:
            self.client.poll(0)  # serve the queued error callbacks
            why = self._last_error
            raise self._fail(e, f"connecting (last error: {why})" if why else "connecting") from e

    # -- topics ---------------------------------------------------------------------------

    def topics(self) -> dict[str, int]:
        """Every topic on the cluster with its partition count (refreshes the cache)."""
        from confluent_kafka import KafkaException

        try:
            meta = self.client.list_topics(timeout=self.timeout)
        except KafkaException as e:
            raise self._fail(e, "listing topics") from e
        counts = {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}
        with self._lock:
            self._partitions = dict(counts)
        return counts

    def partition_count(self, topic: str) -> int:
        """Partitions of ``topic`` (cached); UnknownTopicError if it does not exist."""
        with self._lock:
            n = self._partitions.get(topic)
        if n is not None:
            return n
        n = self._describe_partitions(topic)
        if n is None:
            raise UnknownTopicError(
                f"no topic {topic!r} on the Kafka cluster at {self.bootstrap}; create it "
                "first (the hub creates the topics its sources write)"
            )
        with self._lock:
            self._partitions[topic] = n
        return n

    def check_partition(self, tp: TopicPartition) -> None:
        n = self.partition_count(tp.topic)
        if not 0 <= tp.partition < n:
            raise UnknownTopicError(
                f"topic {tp.topic!r} has partitions 0..{n - 1}, not {tp.partition}"
            )

    def forget(self, topic: str) -> None:
        """Drop ``topic`` from the cache (it was deleted, perhaps by another process)."""
        with self._lock:
            self._partitions.pop(topic, None)

    def _describe_partitions(self, topic: str) -> int | None:
        from confluent_kafka import KafkaException

        try:
            meta = self.client.list_topics(topic=topic, timeout=self.timeout)
        except KafkaException as e:
            raise self._fail(e, f"looking up topic {topic!r}") from e
        t = meta.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            return None
        return len(t.partitions)

    def create(self, name: str, config: TopicConfig) -> None:
        """Create ``name``; a no-op when it exists with the same partition count."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

        if config.partitions < 1:
            raise UsageError(f"topic {name!r}: partitions must be >= 1, got {config.partitions}")
        new = NewTopic(
            name,
            num_partitions=config.partitions,
            replication_factor=config.replication_factor,
            config=kafka_topic_configs(config),
        )
        future = self.client.create_topics(
            [new], operation_timeout=self.timeout, request_timeout=self.timeout
        )[name]
        try:
            future.result()
        except KafkaException as e:
            err = error_code(e)
            if err is None or err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise self._fail(e, f"creating topic {name!r}") from e
            existing = self._wait_listed(name)
            if existing != config.partitions:
                raise UsageError(
                    f"topic {name!r} exists with {existing} partitions, not "
                    f"{config.partitions}; the partition count cannot change"
                ) from e
            return
        n = self._wait_listed(name)
        with self._lock:
            self._partitions[name] = n

    def _wait_listed(self, name: str) -> int:
        """Wait until the metadata shows ``name`` with a leader for every partition."""
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                meta = self.client.list_topics(topic=name, timeout=self.timeout)
            except KafkaException as e:
                raise self._fail(e, f"waiting for topic {name!r}") from e
            t = meta.topics.get(name)
            if (
                t is not None
                and t.error is None
                and t.partitions
                and all(p.leader >= 0 for p in t.partitions.values())
            ):
                return len(t.partitions)
            if time.monotonic() >= deadline:
                raise self._fail(TimeoutError("no leader yet"), f"waiting for topic {name!r}")
            threading.Event().wait(_READY_POLL_S)

    def config(self, name: str) -> TopicConfig:
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import (  # type: ignore[attr-defined]
            ConfigResource,
            ResourceType,
        )

        n = self.partition_count(name)

        def describe() -> TopicConfig:
            meta = self.client.list_topics(topic=name, timeout=self.timeout)
            t = meta.topics.get(name)
            if t is None or not t.partitions:  # a broker that has not caught up yet
                raise KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE))
            replicas = max(len(p.replicas) for p in t.partitions.values())
            resource = ConfigResource(ResourceType.TOPIC, name)
            answer = self.client.describe_configs([resource], request_timeout=self.timeout)
            try:
                described = answer[resource].result()
            except KafkaException as e:
                err = error_code(e)
                if err is not None and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    # The topic is listed, but the broker asked has not heard of it yet
                    # (just created on a multi-broker cluster): a passing state.
                    raise KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE)) from e
                raise
            return _topic_config(described, n, replicas)

        return self.call(describe, f"reading the config of topic {name!r}")

    def delete(self, name: str) -> None:
        """Delete ``name`` and wait until the cluster no longer lists it."""
        from confluent_kafka import KafkaException

        self.partition_count(name)
        future = self.client.delete_topics(
            [name], operation_timeout=self.timeout, request_timeout=self.timeout
        )[name]
        try:
            future.result()
        except KafkaException as e:
            raise self._fail(e, f"deleting topic {name!r}") from e
        self.forget(name)
        deadline = time.monotonic() + self.timeout
        while self._describe_partitions(name) is not None and time.monotonic() < deadline:
            threading.Event().wait(_READY_POLL_S)

    # -- offsets --------------------------------------------------------------------------

    def _list_offsets(
        self, specs: Mapping[TopicPartition, Any], what: str, *, committed: bool = True
    ) -> dict[TopicPartition, int]:
        from confluent_kafka import IsolationLevel
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        if not specs:
            return {}
        request = {KafkaTopicPartition(tp.topic, tp.partition): spec for tp, spec in specs.items()}

        def list_offsets() -> dict[TopicPartition, int]:
            futures = self.client.list_offsets(
                request,
                isolation_level=(
                    IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
                ),
                request_timeout=self.timeout,
            )
            return {
                TopicPartition(k.topic, k.partition): int(f.result().offset)
                for k, f in futures.items()
            }

        return self.call(list_offsets, what)

    def start_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

        spec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        return self._list_offsets(dict.fromkeys(tps, spec), "listing offsets")

    def high_watermarks(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The end of each partition including open transactions (read_uncommitted)."""
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

        spec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        return self._list_offsets(dict.fromkeys(tps, spec), "listing offsets", committed=False)

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The last stable offset of each partition (read_committed end)."""
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

        spec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        return self._list_offsets(dict.fromkeys(tps, spec), "listing offsets")

    def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        """The first offset with a timestamp >= ``timestamp_ms``, or the end offset."""
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

        spec = OffsetSpec.for_timestamp(timestamp_ms)
        found = self._list_offsets({tp: spec}, f"looking up {tp} by time")[tp]
        if found < 0:
            return self.end_offsets([tp])[tp]
        return found
