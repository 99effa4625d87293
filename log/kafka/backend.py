"""The Kafka backend: the log on any Kafka-protocol cluster (Apache Kafka, Redpanda).

The parts, one module each: topics and offsets through the admin client
(:mod:`log.kafka.admin`), idempotent and transactional producers (:mod:`log.kafka.producer`),
``read_committed`` readers (:mod:`log.kafka.consumer`), source checkpoints in a compacted
topic (:mod:`log.kafka.checkpoints`) and sink offsets as consumer-group offsets
(:mod:`log.kafka.group_offsets`). Errors become :mod:`hub.errors` types
(:mod:`log.kafka.errors`); an unreachable cluster is a :class:`~hub.errors.LogStorageError`
naming the bootstrap servers.

How it differs from the embedded log (the contract is :mod:`log.api`):

* Offsets have gaps: each transaction of :meth:`KafkaLog.append_checkpointed` leaves a
  commit marker that takes an offset and is never read, so a reader may skip offsets. The
  end offset is the *last stable offset* (read_committed), so a reader that read the last
  record usually stands one below it, on the marker: :meth:`KafkaLog.caught_up` says
  whether anything is left to read.
* :meth:`KafkaLog.append` uses an idempotent producer with ``acks=all`` and no transaction:
  the records of one call can be split over Kafka batches; if the cluster fails mid-call a
  prefix may be written before the call raises. While another writer holds a transaction
  open on the same partition, appended records become visible only after it ends.
* :meth:`KafkaLog.append_checkpointed` writes the records and the checkpoint record
  (into ``__changehub_checkpoints``) in one Kafka transaction, produced together and
  acknowledged in one round trip, and returns once the commit is durable. The commit markers
  that make the records readable are written by the broker a moment later: the source polls
  its next batch meanwhile, and this process's readers (``fetch``, ``read``, ``end_offset``,
  ``caught_up``) first wait for the markers of its own transactions on the partitions they
  touch, so that, as in the embedded log, what an append returned is readable at once.
* Durability is the cluster's: ``acks=all`` with the topic's ``min.insync.replicas``; the
  embedded log's fsync policy does not apply.
* :meth:`KafkaLog.describe_topic` reports sizes of 0: confluent-kafka has no
  DescribeLogDirs call. Offsets are exact.
* ``list_topics`` and ``list_groups`` hide names starting with ``__`` or ``_changehub``;
  ``list_groups`` lists every consumer group on the cluster, not only changehub's sinks.

Scale-out (several hub processes on one pipeline, which the embedded log cannot do): a sink's
processes join its consumer group (:meth:`KafkaLog.group_member`) and share its partitions;
each source has a lease, the one partition of ``__changehub_leases`` in its own group
(:meth:`KafkaLog.lease`), and the process holding it fences any earlier writer of the
source (:meth:`KafkaLog.claim_source`) before it reads the checkpoint. See
:mod:`log.kafka.groups`.

Thread-safe: one writer per partition and per source, many readers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hub.errors import (
    LogClosedError,
    LogError,
    SourceFencedError,
    UnknownTopicError,
    UsageError,
)
from log.api import (
    Log,
    LogRecord,
    PartitionInfo,
    Record,
    TopicConfig,
    TopicInfo,
    TopicPartition,
    check_fetch_limits,
)
from log.kafka.admin import TopicAdmin
from log.kafka.checkpoints import CheckpointReader, encode
from log.kafka.consumer import Reader, ReaderPool
from log.kafka.errors import error_code, log_error
from log.kafka.group_offsets import KafkaGroupOffsets
from log.kafka.groups import LEASE_TOPIC, Callback, GroupMember
from log.kafka.producer import Appender, SourceProducer

__all__ = ["CHECKPOINT_TOPIC", "KafkaLog"]

_log = logging.getLogger(__name__)

CHECKPOINT_TOPIC = "__changehub_checkpoints"
_VISIBLE_POLL_S = 0.002


def _internal(name: str) -> bool:
    return name.startswith(("__", "_changehub"))


class KafkaLog(Log):
    """The log on a Kafka cluster. See the module doc."""

    def __init__(
        self,
        bootstrap: str,
        *,
        client_config: Mapping[str, Any] | None = None,
        replication_factor: int = 1,
        min_insync_replicas: int = 1,
        default_topic_config: TopicConfig | None = None,
        checkpoint_topic: str = CHECKPOINT_TOPIC,
        transactional_id_prefix: str = "changehub",
        transaction_timeout_ms: int = 15_000,
        timeout: float = 30.0,
        read_only: bool = False,
    ) -> None:
        try:
            import confluent_kafka  # noqa: F401
        except ImportError as e:
            raise UsageError(
                "log backend 'kafka' needs the confluent-kafka package: pip install confluent-kafka"
            ) from e
        self.bootstrap = bootstrap
        self.read_only = read_only
        self.default_topic_config = default_topic_config or TopicConfig(
            replication_factor=replication_factor, min_insync_replicas=min_insync_replicas
        )
        self._config: dict[str, Any] = {**(client_config or {}), "bootstrap.servers": bootstrap}
        self._timeout = timeout
        self._txn_prefix = transactional_id_prefix
        self._txn_timeout_ms = transaction_timeout_ms
        self._closed = False
        self._lock = threading.Lock()
        self._sources: dict[str, SourceProducer] = {}
        # partition -> end of this process's last committed transaction on it, until its
        # commit marker is written and readers can reach it (see _settle)
        self._unseen: dict[TopicPartition, int] = {}
        self._source_locks: dict[str, threading.Lock] = {}
        self._admin = TopicAdmin(self._config, bootstrap, timeout)
        self._admin.check_reachable()
        self._checkpoint_tp = TopicPartition(checkpoint_topic, 0)
        if not read_only:
            self._admin.create(
                checkpoint_topic,
                TopicConfig(
                    partitions=1,
                    cleanup="compact",
                    retention_ms=None,
                    segment_bytes=16 * 1024 * 1024,
                    delete_retention_ms=0,
                    replication_factor=replication_factor,
                    min_insync_replicas=min_insync_replicas,
                ),
            )
            # one empty partition whose group assignment is each source's lease
            self._admin.create(
                LEASE_TOPIC,
                TopicConfig(
                    partitions=1,
                    retention_ms=None,
                    replication_factor=replication_factor,
                    min_insync_replicas=min_insync_replicas,
                ),
            )
        self._groups = KafkaGroupOffsets(self._admin, self._config)
        self._readers = ReaderPool(self._config, self._admin, timeout)
        self._checkpoints = CheckpointReader(
            self._checkpoint_tp, Reader(self._config, self._admin, timeout)
        )
        # made now when writable, so that its connection and producer id are ready by the
        # first append (librdkafka sets them up in the background)
        self._appender: Appender | None = (
            None if read_only else Appender(self._config, bootstrap, timeout)
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sources, self._sources = list(self._sources.values()), {}
        # waiting readers notice _closed within one consume slice and raise LogClosedError
        self._readers.close()
        self._checkpoints.close()
        self._groups.close()
        for s in sources:
            s.close()
        if self._appender is not None:
            self._appender.close()

    def _is_closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"the Kafka log at {self.bootstrap} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise UsageError(
                f"the Kafka log at {self.bootstrap} was opened read-only (for inspection); "
                "appends and topic changes go through the hub"
            )

    # -- topics -------------------------------------------------------------------------------

    def create_topic(self, name: str, config: TopicConfig) -> None:
        self._check_writable()
        if _internal(name):
            raise UsageError(
                f"topic names starting with '__' or '_changehub' are reserved: {name!r}"
            )
        self._admin.create(name, config)

    def topic_config(self, name: str) -> TopicConfig:
        self._check_open()
        return self._admin.config(name)

    def list_topics(self) -> list[str]:
        self._check_open()
        return sorted(t for t in self._admin.topics() if not _internal(t))

    def describe_topic(self, name: str) -> TopicInfo:
        self._check_open()
        config = self._admin.config(name)
        tps = [TopicPartition(name, i) for i in range(config.partitions)]
        self._settle(tps)
        starts = self._admin.start_offsets(tps)
        ends = self._admin.end_offsets(tps)
        parts = tuple(PartitionInfo(tp.partition, starts[tp], ends[tp], 0) for tp in tps)
        return TopicInfo(name, config, parts)

    def delete_topic(self, name: str) -> None:
        self._check_writable()
        self._admin.delete(name)

    # -- writing ------------------------------------------------------------------------------

    def append(self, tp: TopicPartition, records: Sequence[Record]) -> int:
        self._check_writable()
        self._admin.check_partition(tp)
        if not records:
            return self._admin.end_offsets([tp])[tp]
        with self._lock:
            if self._appender is None or self._appender.fatal:
                broken, self._appender = self._appender, None
                if broken is not None:
                    broken.close()
                self._appender = Appender(self._config, self.bootstrap, self._timeout)
            appender = self._appender
        return appender.append(tp, records)

    def _source_lock(self, source: str) -> threading.Lock:
        with self._lock:
            lock = self._source_locks.get(source)
            if lock is None:
                lock = self._source_locks[source] = threading.Lock()
            return lock

    def _source_producer(self, source: str) -> SourceProducer:
        with self._lock:
            self._check_open()
            producer = self._sources.get(source)
        if producer is None:
            producer = SourceProducer(
                self._config,
                f"{self._txn_prefix}.{source}",
                self.bootstrap,
                self._timeout,
                self._txn_timeout_ms,
            )
            with self._lock:
                self._sources[source] = producer
        return producer

    def _drop_producer(self, source: str) -> None:
        with self._lock:
            producer = self._sources.pop(source, None)
        if producer is not None:
            producer.close()

    def claim_source(self, source: str) -> None:
        """Become the only writer of ``source``: a new transactional producer, whose start
        fences any earlier one (a killed or stale hub process) and aborts its open transaction.

        Call before :meth:`last_checkpoint` on taking a source over, so that no batch of the
        previous holder can land after the checkpoint this process starts from.
        """
        self._check_writable()
        with self._source_lock(source):
            self._drop_producer(source)
            self._source_producer(source)

    def append_checkpointed(
        self,
        source: str,
        writes: Mapping[TopicPartition, Sequence[Record]],
        checkpoint: Mapping[str, Any],
    ) -> dict[TopicPartition, int]:
        self._check_writable()
        if not source:
            raise UsageError("a checkpointed append needs a source name")
        encode(source, checkpoint)  # refuse a checkpoint that is not JSON before writing
        targets = sorted((tp, recs) for tp, recs in writes.items() if recs)
        for tp, _ in targets:
            self._admin.check_partition(tp)
        with self._source_lock(source):
            producer = self._source_producer(source)
            try:
                producer.begin()
                for tp, recs in targets:
                    producer.produce(tp, recs)
                # produced with the records, not after their acknowledgements: one
                # AddPartitionsToTxn and one Produce round trip per transaction, not two
                value = encode(source, checkpoint)
                producer.produce(self._checkpoint_tp, [Record(source.encode(), value)])
                d = producer.flush(f"writing the records of source {source!r}")
                ends = {tp: d.last[tp] + 1 for tp, _ in targets}
                cp_offset = d.last[self._checkpoint_tp]
                producer.commit()
            except (LogError, UsageError):
                if not producer.abort():
                    self._drop_producer(source)
                raise
            except Exception as e:
                err = error_code(e)
                if err is None:
                    if not producer.abort():
                        self._drop_producer(source)
                    raise
                if err.fatal() or not err.txn_requires_abort() or not producer.abort():
                    # fenced by a newer producer of this source, or broken: start afresh
                    self._drop_producer(source)
                raise self._txn_error(e, source) from e
        self._checkpoints.remember(source, checkpoint, cp_offset)
        # Committed and durable now; the commit markers that make the records readable are
        # written by the broker a moment later. The source does not wait for them (it polls
        # its next batch meanwhile): this process's own readers do, in _settle.
        with self._lock:
            self._unseen.update(ends)
        return {tp: d.first[tp] for tp, _ in targets}

    def _settle(self, tps: Iterable[TopicPartition]) -> None:
        """Wait until this process's committed transactions on ``tps`` are readable, so that
        what an append returned is readable at once, as in the embedded log."""
        if not self._unseen:  # the common case, without the lock
            return
        with self._lock:
            todo = {tp: self._unseen[tp] for tp in tps if tp in self._unseen}
        if not todo:
            return
        self._await_visible(todo)
        with self._lock:
            for tp, end in todo.items():
                if self._unseen.get(tp) == end:
                    del self._unseen[tp]

    def _txn_error(self, e: BaseException, source: str) -> Exception:
        from confluent_kafka import KafkaError

        err = error_code(e)
        if err is not None and err.code() in (
            KafkaError._FENCED,
            KafkaError.PRODUCER_FENCED,
            KafkaError.INVALID_PRODUCER_EPOCH,
        ):
            return SourceFencedError(
                f"source {source!r} was taken over: another producer with transactional id "
                f"{self._txn_prefix}.{source!r} started on the Kafka cluster at "
                f"{self.bootstrap}; this writer stops (only one process may run a source)"
            )
        return log_error(e, f"the transaction of source {source!r}", self.bootstrap)

    def _await_visible(self, ends: Mapping[TopicPartition, int]) -> None:
        """Wait until read_committed readers can reach ``ends`` (the markers are async)."""
        deadline = time.monotonic() + self._timeout
        while True:
            stable = self._admin.end_offsets(ends)
            if all(stable[tp] >= end for tp, end in ends.items()):
                return
            if time.monotonic() >= deadline:
                _log.warning(
                    "committed records are not yet readable after %.0f s: %s", self._timeout, ends
                )
                return
            threading.Event().wait(_VISIBLE_POLL_S)

    def last_checkpoint(self, source: str) -> dict[str, Any] | None:
        self._check_open()
        try:
            # Every transaction written so far (by any process: one that just committed, or
            # one claim_source has just fenced and aborted) first becomes readable: its
            # commit markers are written after the commit returned.
            self._await_visible(self._admin.high_watermarks([self._checkpoint_tp]))
            return self._checkpoints.last(source, self._is_closed)
        except UnknownTopicError:
            if self.read_only:  # no hub has written to this cluster yet
                return None
            raise

    # -- reading ------------------------------------------------------------------------------

    def fetch(
        self,
        positions: Mapping[TopicPartition, int],
        *,
        max_records: int = 10_000,
        max_bytes: int = 8 * 1024 * 1024,
        timeout: float = 0.0,
    ) -> list[LogRecord]:
        self._check_open()
        check_fetch_limits(max_records, max_bytes)
        if not positions:
            return []
        for tp in positions:
            self._admin.check_partition(tp)
        self._settle(positions)
        reader = self._readers.checkout(positions)
        try:
            return reader.fetch(positions, max_records, max_bytes, timeout, self._is_closed)
        finally:
            self._readers.checkin(reader)

    def start_offset(self, tp: TopicPartition) -> int:
        self._check_open()
        self._admin.check_partition(tp)
        return self._admin.start_offsets([tp])[tp]

    def end_offset(self, tp: TopicPartition) -> int:
        self._check_open()
        self._admin.check_partition(tp)
        self._settle([tp])
        return self._admin.end_offsets([tp])[tp]

    def caught_up(self, tp: TopicPartition, offset: int) -> bool:
        # records below the end are returned (a read waits for them); markers are not
        return offset >= self.end_offset(tp) or not self.read(tp, offset, max_records=1)

    def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        self._check_open()
        self._admin.check_partition(tp)
        return self._admin.offset_for_time(tp, timestamp_ms)

    # -- scale-out ----------------------------------------------------------------------------

    def group_member(
        self, group: str, *, on_assign: Callback, on_revoke: Callback, on_lost: Callback
    ) -> GroupMember:
        """A member of consumer group ``group``, not subscribed yet (:mod:`log.kafka.groups`)."""
        self._check_open()
        return GroupMember(
            self._config, self.bootstrap, group,
            on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost, timeout=self._timeout,
        )  # fmt: skip

    def lease(
        self, group: str, *, on_assign: Callback, on_revoke: Callback, on_lost: Callback
    ) -> GroupMember:
        """A member of lease group ``group`` (:func:`log.kafka.groups.lease_group`),
        subscribed: whoever is assigned the lease partition runs the connector."""
        self._check_writable()
        member = self.group_member(
            group, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost
        )
        member.subscribe([LEASE_TOPIC])
        return member

    # -- sink group offsets -------------------------------------------------------------------

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._check_open()
        for tp in offsets:
            self._admin.check_partition(tp)
        self._groups.commit(group, offsets)

    def committed_offsets(self, group: str) -> dict[TopicPartition, int]:
        self._check_open()
        return self._groups.committed(group)

    def list_groups(self) -> list[str]:
        self._check_open()
        return self._groups.groups()
