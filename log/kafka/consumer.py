"""Reading from Kafka: ``read_committed`` consumers that serve :meth:`log.api.Log.fetch`.

A :class:`Reader` wraps one librdkafka consumer that is *assigned* partitions (never
subscribed: the log's callers say where to read, and group offsets are stored apart, see
:mod:`log.kafka.group_offsets`). It remembers where the records it handed out end, so a caller
that reads on from there (a sink going through a partition) gets what the consumer prefetched
without a new round trip; any other position reassigns it. :class:`ReaderPool` keeps idle
readers for reuse, preferring one already assigned the same partitions.

How a fetch waits, and what is different from the embedded log:

* Readers see records up to the partition's *last stable offset*: records of an open
  transaction stay hidden until it commits, and never appear if it aborts.
* Offsets have gaps: every transaction leaves a commit (or abort) marker, a control record
  that takes an offset and is never returned, and aborted records are skipped as well.
* When the consumer has nothing at hand, the reader asks the broker for the stable ends. If
  records lie between its position and the end, they are on their way: it waits for them
  (however small the timeout), so a fetch returns a record whenever one is available.
  Otherwise it waits up to the timeout for new ones, blocking in the consumer, which the
  broker wakes as soon as records become stable (Kafka's fetch long-poll), in slices of
  0.1 s so that closing the log wakes it too. A reader whose offset is that of a
  transaction marker (the usual place for a sink that read everything) waits like one at
  the end: the marker is skipped, not returned.
* An offset asked for out of the blue (not where the reader stopped) is checked against the
  partition's start and stable end first: :class:`~hub.errors.OffsetOutOfRangeError`.

Thread-safety: a :class:`Reader` is used by one thread at a time; :class:`ReaderPool` is
thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from hub.errors import LogClosedError, OffsetOutOfRangeError, UnknownTopicError
from log.api import LogRecord, TopicPartition
from log.kafka.admin import TopicAdmin
from log.kafka.errors import log_error

__all__ = ["Reader", "ReaderPool", "consumer_config"]

_log = logging.getLogger(__name__)

_SLICE_S = 0.1
_MAX_CONSUME = 100_000
READER_GROUP = "_changehub-reader"  # librdkafka needs a group.id; it never joins or commits


def consumer_config(client_config: Mapping[str, Any]) -> dict[str, Any]:
    conf: dict[str, Any] = {
        # prefetch at most this much per partition: a slow sink must not pull the log into RAM
        "queued.max.messages.kbytes": 16 * 1024,
        "fetch.wait.max.ms": 100,
    }
    conf.update(client_config)
    conf.update(
        {
            "group.id": READER_GROUP,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "allow.auto.create.topics": False,
            "enable.partition.eof": False,
        }
    )
    return conf


class Reader:
    """One assigned ``read_committed`` consumer. See the module doc."""

    def __init__(self, client_config: Mapping[str, Any], admin: TopicAdmin, timeout: float) -> None:
        from confluent_kafka import Consumer

        self.admin = admin
        self.timeout = timeout
        self.consumer = Consumer(consumer_config(client_config))
        self.next: dict[TopicPartition, int] = {}
        self._pending: deque[Any] = deque()
        self.broken = False

    def close(self) -> None:
        self.consumer.close()

    def _move(self, positions: Mapping[TopicPartition, int]) -> bool:
        """Point the consumer at ``positions``; True if that was not where it stood."""
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        if dict(positions) == self.next:
            return False
        self._pending.clear()
        self.consumer.assign(
            [KafkaTopicPartition(tp.topic, tp.partition, o) for tp, o in positions.items()]
        )
        self.next = dict(positions)
        return True

    def _check_bounds(self, positions: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        starts = self.admin.start_offsets(positions)
        ends = self.admin.end_offsets(positions)
        for tp, offset in positions.items():
            if not starts[tp] <= offset <= ends[tp]:
                raise OffsetOutOfRangeError(
                    f"offset {offset} is out of range for {tp}: it holds {starts[tp]}..{ends[tp]}",
                    start=starts[tp],
                    end=ends[tp],
                )
        return ends

    def fetch(
        self,
        positions: Mapping[TopicPartition, int],
        max_records: int,
        max_bytes: int,
        timeout: float,
        closed: Callable[[], bool],
    ) -> list[LogRecord]:
        """Records from ``positions`` on; see the module doc for how it waits."""
        try:
            return self._fetch(positions, max_records, max_bytes, timeout, closed)
        except BaseException:
            self.broken = True
            raise

    def _fetch(
        self,
        positions: Mapping[TopicPartition, int],
        max_records: int,
        max_bytes: int,
        timeout: float,
        closed: Callable[[], bool],
    ) -> list[LogRecord]:
        ends: dict[TopicPartition, int] | None = None
        if self._move(positions):
            self.broken = True  # until the bounds are known good
            ends = self._check_bounds(positions)
            self.broken = False
        deadline = time.monotonic() + timeout
        out = self._take(max_records, max_bytes, min(timeout, _SLICE_S))
        while not out:
            if ends is None:
                ends = self.admin.end_offsets(positions)
            if not self._caught_up(ends):
                return self._await_known(ends, max_records, max_bytes, closed)
            now = time.monotonic()
            if now >= deadline:
                return []
            out = self._take(max_records, max_bytes, min(_SLICE_S, deadline - now))
            if closed():
                raise LogClosedError("the Kafka log was closed while a reader waited")
            if not out and time.monotonic() >= deadline:
                ends = None  # one last look: records may have become stable just now
                deadline = 0.0
        return out

    def _await_known(
        self,
        ends: Mapping[TopicPartition, int],
        max_records: int,
        max_bytes: int,
        closed: Callable[[], bool],
    ) -> list[LogRecord]:
        """Wait for records known to lie below the stable ends (the fetch is on its way)."""
        patience = time.monotonic() + self.timeout
        while True:
            out = self._take(max_records, max_bytes, _SLICE_S)
            if out or self._caught_up(ends):
                return out
            if closed():
                raise LogClosedError("the Kafka log was closed while a reader waited")
            if time.monotonic() >= patience:
                _log.warning("records below the stable end of %s did not arrive", list(ends))
                return []

    def _caught_up(self, ends: Mapping[TopicPartition, int]) -> bool:
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        at = self.consumer.position([KafkaTopicPartition(tp.topic, tp.partition) for tp in ends])
        here = {TopicPartition(k.topic, k.partition): k.offset for k in at}
        # the consumer's position moves past control records, which are never handed out
        return all(max(self.next[tp], here.get(tp, -1)) >= end for tp, end in ends.items())

    def _take(self, max_records: int, max_bytes: int, wait: float) -> list[LogRecord]:
        if not self._pending:
            got = []
            if wait > 0:
                # consume() would wait out the whole timeout for a full batch; poll() returns
                # at the first record, and what came with it is drained without waiting
                first = self.consumer.poll(wait)
                if first is None:
                    return []
                got.append(first)
            got += self.consumer.consume(min(max_records, _MAX_CONSUME) - len(got), 0)
            for m in got:
                if m.error() is None:
                    self._pending.append(m)
                else:
                    self._on_error(m)
        # the hot loop of reading: one LogRecord per message, nothing else per record
        out: list[LogRecord] = []
        append = out.append
        budget = max_bytes
        pending = self._pending
        last: dict[tuple[str, int], int] = {}
        while pending and len(out) < max_records:
            m = pending[0]
            key, value = m.key(), m.value()
            size = (len(key) if key else 0) + (len(value) if value else 0)
            if out and size > budget:
                break
            pending.popleft()
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            headers = m.headers()
            append(
                LogRecord(
                    topic,
                    partition,
                    offset,
                    m.timestamp()[1],
                    key,
                    value,
                    tuple((k, v if v is not None else b"") for k, v in headers) if headers else (),
                )
            )
            last[topic, partition] = offset
            budget -= size
        for (topic, partition), offset in last.items():
            self.next[TopicPartition(topic, partition)] = offset + 1
        return out

    def _on_error(self, m: Any) -> None:
        from confluent_kafka import KafkaError, KafkaException

        err = m.error()
        code = err.code()
        tp = TopicPartition(m.topic() or "", m.partition() if m.partition() is not None else -1)
        if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            start = self.admin.start_offsets([tp])[tp]
            end = self.admin.end_offsets([tp])[tp]
            raise OffsetOutOfRangeError(
                f"offset {self.next.get(tp)} is out of range for {tp}: it holds {start}..{end}",
                start=start,
                end=end,
            )
        if code in (
            KafkaError.UNKNOWN_TOPIC_OR_PART,
            KafkaError._UNKNOWN_TOPIC,
            KafkaError._UNKNOWN_PARTITION,
        ):
            self.admin.forget(tp.topic)
            raise UnknownTopicError(f"topic {tp.topic!r} does not exist (any more): {err.str()}")
        if err.fatal():
            raise log_error(KafkaException(err), f"reading {tp}", self.admin.bootstrap)
        # connection trouble and the like: librdkafka retries by itself
        _log.debug("consumer error on %s (retried by the client): %s", tp, err.str())


class ReaderPool:
    """Idle readers for reuse; closes them all at :meth:`close`."""

    def __init__(
        self, client_config: Mapping[str, Any], admin: TopicAdmin, timeout: float, keep: int = 8
    ) -> None:
        self._config = dict(client_config)
        self._admin = admin
        self._timeout = timeout
        self._keep = keep
        self._idle: list[Reader] = []
        self._lock = threading.Lock()
        self._closed = False

    def checkout(self, positions: Mapping[TopicPartition, int]) -> Reader:
        with self._lock:
            if self._closed:
                raise LogClosedError("the Kafka log is closed")
            for i, r in enumerate(self._idle):
                if r.next == dict(positions):
                    return self._idle.pop(i)
            for i, r in enumerate(self._idle):
                if set(r.next) == set(positions):
                    return self._idle.pop(i)
            if self._idle:
                return self._idle.pop()
        return Reader(self._config, self._admin, self._timeout)

    def checkin(self, reader: Reader) -> None:
        if reader.broken:
            reader.close()
            return
        with self._lock:
            if not self._closed and len(self._idle) < self._keep:
                self._idle.append(reader)
                return
        reader.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for r in idle:
            r.close()
