"""The source loop: poll -> append records with their checkpoint, atomically -> committed().

Exactly once from source to log rests on three facts: the source derives all its state from
the checkpoint it is started with; the log stores a batch's records and its checkpoint in
one atomic append; and the source releases upstream (``committed``) only after that append
is durable. A crash anywhere leaves either the batch and its checkpoint, or neither.

Each source runs in one process at a time. On the embedded log that is the process holding
the log directory. On Kafka every process running the pipeline asks for the source's lease
(:mod:`hub.leader`); the one holding it fences any earlier writer, reads the checkpoint and
runs the source, the others stand by and take over when the holder dies or leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connectors.api import Source, SourceBatch, SourceColumns, SourceRecord
from hub.backoff import Backoff
from hub.errors import RetriableError, SourceFencedError
from hub.leader import Lease, lease_for, show_lease_state
from hub.state import ConnectorState, ConnectorStatus
from hub.worker import Worker
from log.api import Log, Record, TopicPartition
from log.partitioner import partition_for

__all__ = ["SourceWorker", "route"]

log = logging.getLogger("changehub.source")

POLL_TIMEOUT_S = 0.5


def route(
    records: Sequence[SourceRecord], partitions: Callable[[str], int]
) -> Mapping[TopicPartition, Sequence[Record]]:
    """Group a batch's records by topic-partition, partition = murmur2(key) mod n.

    The hot path of every source (a few hundred thousand records a second): records of a
    single-partition topic, the common case, go to one bucket looked up once per run of the
    same topic, and Records are built with tuple.__new__ (C) rather than the NamedTuple's
    Python-level constructor. Records laid out as columns (:class:`SourceColumns`) for a
    single-partition topic go to the log as they are.
    """
    if isinstance(records, SourceColumns) and partitions(records.topic) == 1:
        return {TopicPartition(records.topic, 0): records.columns}
    writes: dict[TopicPartition, list[Record]] = {}
    counts: dict[str, int] = {}
    new = tuple.__new__
    last_topic: str | None = None
    n = 1
    bucket: list[Record] = []
    for topic, key, value, ts in records:
        if topic != last_topic:
            last_topic = topic
            found = counts.get(topic)
            n = counts[topic] = partitions(topic) if found is None else found
            if n == 1:
                bucket = writes.setdefault(TopicPartition(topic, 0), [])
        if n > 1:
            bucket = writes.setdefault(TopicPartition(topic, partition_for(key, n)), [])
        bucket.append(new(Record, (key, value, ts, ())))
    return writes


class SourceWorker(Worker):
    """Runs one source. ``make`` builds a fresh connector for every (re)start."""

    def __init__(
        self,
        status: ConnectorStatus,
        make: Callable[[], Source[Any]],
        log_: Log,
        ensure_topic: Callable[[str], int],
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(status, backoff)
        self._make = make
        self._log = log_
        self._ensure_topic = ensure_topic
        self._source: Source[Any] | None = None
        self._lease: Lease | None = None
        # the last poll found nothing new, or another process runs the source (for
        # `run --until-caught-up`)
        self.idle = False

    def open(self) -> None:
        self.idle = False
        self._lease = lease_for(self._log, self.status.name, self._stop_source)
        if self._lease is None:
            self._start_source()
        # else: the source starts once this process holds its lease (in step)

    def _start_source(self) -> None:
        checkpoint = self._log.last_checkpoint(self.status.name)
        source = self._make()
        self._source = source
        source.start(checkpoint)
        for topic in source.topics():
            self._ensure_topic(topic)
        self.cell.update(checkpoint=checkpoint)
        log.info(
            "source %s started from %s",
            self.status.name,
            "its first position" if checkpoint is None else f"checkpoint {checkpoint}",
        )

    def step(self) -> None:
        lease = self._lease
        if lease is not None:
            held = lease.check(wait=self._source is None)
            show_lease_state(self, lease)  # STANDBY while another process runs it
            if not held:
                self._stop_source()
                self.idle = lease.decided  # another process runs it
                return
            if self._source is None:
                lease.claim()
                self._start_source()
        assert self._source is not None
        batch = self._source.poll(POLL_TIMEOUT_S)
        if batch is None:
            self.idle = True
            return
        self.idle = False
        try:
            self._append(batch)
        except SourceFencedError as exc:
            # another process holds the source now: start over, standing by until the
            # lease says otherwise
            raise RetriableError(str(exc)) from exc
        self._source.committed(batch.checkpoint)
        self.backoff.reset()

    def _append(self, batch: SourceBatch) -> None:
        writes = route(batch.records, self._ensure_topic)
        self._log.append_checkpointed(self.status.name, writes, batch.checkpoint)
        self.cell.update(checkpoint=batch.checkpoint)
        self.cell.add(records=len(batch.records))

    def active_state(self) -> ConnectorState:
        return ConnectorState.RUNNING if self._lease is None else self._lease.state()

    @property
    def connector(self) -> Source[Any] | None:
        """The running source (None between attempts), for metrics and the API."""
        return self._source

    def interrupt(self) -> None:
        # Sources poll with a short timeout, so the loop notices `stopping` by itself; an
        # explicit stop here could race with a poll in progress on the worker thread.
        return

    def tick_paused(self) -> None:
        if self._lease is not None and not self._lease.check(wait=False):
            self._stop_source()

    def _stop_source(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            log.info("source %s stopped in this process", self.status.name)
            source.stop()

    def close(self, graceful: bool) -> None:
        lease, self._lease = self._lease, None
        try:
            self._stop_source()
        finally:
            if lease is not None:
                lease.release()  # another process takes the source over at once
