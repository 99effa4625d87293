"""Writing to Kafka: an idempotent producer for plain appends, a transactional one per source.

Both use ``acks=all`` and ``enable.idempotence``: an acknowledged record is on every in-sync
replica (at least ``min.insync.replicas`` of them), and librdkafka's retries never duplicate
or reorder a record. ``allow.auto.create.topics`` is off, so a typo does not create a topic.

:class:`Appender` serves :meth:`log.api.Log.append`. A background thread polls the producer
for delivery reports; each call waits on its own reports only, so appends to different
partitions from different threads do not wait for each other. The records of one append may
travel in more than one Kafka batch: if the cluster fails mid-way a prefix of them may be
written before the call raises (the idempotent producer never writes a record twice).

:class:`SourceProducer` serves :meth:`log.api.Log.append_checkpointed`: one producer with
``transactional.id = <prefix>.<source>`` per source. ``init_transactions`` fences any older
producer of the same source (a killed hub, or a stale one after fail-over) and aborts its open
transaction, so readers are never held back by it for longer than the fail-over.

Thread-safety: :class:`Appender` is thread-safe. A :class:`SourceProducer` is used by one
thread at a time (the log holds a per-source lock around it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from hub.errors import LogClosedError, LogStorageError
from log.api import Record, TopicPartition
from log.kafka.errors import log_error

__all__ = ["Appender", "Deliveries", "SourceProducer", "producer_config"]

_log = logging.getLogger(__name__)

_POLL_S = 0.1
_GRACE_S = 5.0


def producer_config(client_config: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """librdkafka producer settings: durable by default; the user's config may tune the rest."""
    conf: dict[str, Any] = {"linger.ms": 1, "compression.type": "none"}
    conf.update(client_config)
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "allow.auto.create.topics": False,
        }
    )
    conf.update(extra)
    return conf


class Deliveries:
    """Delivery reports of a group of produced records: first and last offset per partition.

    Reports arrive in one thread (the one polling the producer), so the bookkeeping needs
    no lock; only the waiter is woken under the condition's lock, when the last one came.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.pending = 0
        self.first: dict[TopicPartition, int] = {}
        self.last: dict[TopicPartition, int] = {}
        self.error: Any = None

    def expect(self, n: int) -> None:
        with self._cond:
            self.pending += n

    def report(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.error = self.error or err
        else:
            tp = TopicPartition(msg.topic(), msg.partition())
            offset = msg.offset()
            if tp not in self.first:  # the idempotent producer delivers in order
                self.first[tp] = offset
            self.last[tp] = offset
        self.pending -= 1
        if self.pending == 0:  # the waiter checks under the lock: this cannot slip past it
            with self._cond:
                self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.pending == 0, timeout)


def _produce(producer: Any, tp: TopicPartition, records: Sequence[Record], d: Deliveries) -> None:
    d.expect(len(records))
    produce, report = producer.produce, d.report
    topic, partition = tp
    for key, value, timestamp, headers in records:
        while True:
            try:
                if headers:
                    produce(
                        topic, value, key, partition, on_delivery=report, timestamp=timestamp,
                        headers=list(headers),
                    )  # fmt: skip
                else:
                    produce(topic, value, key, partition, on_delivery=report, timestamp=timestamp)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(_POLL_S)


class Appender:
    """The idempotent, non-transactional producer behind :meth:`log.api.Log.append`."""

    def __init__(self, client_config: Mapping[str, Any], bootstrap: str, timeout: float) -> None:
        from confluent_kafka import Producer

        self.bootstrap = bootstrap
        self.timeout = timeout
        # librdkafka gives up on a record when the append gives up on it, so that a failed
        # append's records are not delivered behind the caller's back minutes later
        self.producer = Producer(
            producer_config(client_config, **{"message.timeout.ms": int(timeout * 1000)})
        )
        self.fatal = False  # librdkafka gave up on this producer: the log makes a new one
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-deliveries", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self.producer.poll(_POLL_S)

    def append(self, tp: TopicPartition, records: Sequence[Record]) -> int:
        """Produce ``records`` to ``tp``; return the offset of the first once all are acked."""
        if self._closed.is_set():
            raise LogClosedError(f"the Kafka log at {self.bootstrap} is closed")
        d = Deliveries()
        _produce(self.producer, tp, records, d)
        if not d.wait(self.timeout + _GRACE_S):  # librdkafka's own timeout reports first
            raise LogStorageError(
                f"appending to {tp}: the Kafka cluster at {self.bootstrap} did not acknowledge "
                f"{d.pending} of {len(records)} records within {self.timeout:.0f} s; check "
                "that the brokers run and that min.insync.replicas of them are in sync"
            )
        if d.error is not None:
            self.fatal = self.fatal or bool(d.error.fatal())
            raise log_error(d.error, f"appending to {tp}", self.bootstrap)
        return d.first[tp]

    def close(self) -> None:
        self._closed.set()
        self._poller.join()
        remaining = self.producer.flush(self.timeout)
        if remaining:
            _log.warning("%d records were not delivered before the log closed", remaining)


class SourceProducer:
    """One source's transactional producer (see the module doc)."""

    def __init__(
        self,
        client_config: Mapping[str, Any],
        transactional_id: str,
        bootstrap: str,
        timeout: float,
        transaction_timeout_ms: int,
    ) -> None:
        from confluent_kafka import KafkaException, Producer

        self.bootstrap = bootstrap
        self.timeout = timeout
        self.transactional_id = transactional_id
        # librdkafka reports a fatal error (this producer was fenced) through error_cb and
        # then purges the queued records: their delivery reports only say "purged", so the
        # fatal error is kept to say why
        self.fatal_error: Any = None
        self.producer = Producer(
            producer_config(
                client_config,
                **{
                    "transactional.id": transactional_id,
                    "transaction.timeout.ms": transaction_timeout_ms,
                    "error_cb": self._on_error,
                },
            )
        )
        try:
            self.producer.init_transactions(timeout)
        except KafkaException as e:
            raise log_error(e, f"starting transactions for {transactional_id!r}", bootstrap) from e
        self.deliveries = Deliveries()

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self.fatal_error = self.fatal_error or err

    def _failure(self, d: Deliveries) -> Any:
        """Why the transaction's records failed: a fatal error before the purge it caused."""
        from confluent_kafka import KafkaError

        if self.fatal_error is not None:
            return self.fatal_error
        if d.error is not None and d.error.code() == KafkaError._PURGE_QUEUE:
            # the error event may not have been served yet: the abort tells
            return self._abort_reason() or d.error
        return d.error

    def _abort_reason(self) -> Any:
        """Abort the transaction; the KafkaException it raised (a fenced producer's abort
        raises its fatal error), else None."""
        from confluent_kafka import KafkaException

        try:
            self.producer.abort_transaction(min(self.timeout, 5.0))
        except KafkaException as why:
            return why
        return None

    def begin(self) -> None:
        self.deliveries = Deliveries()
        self.producer.begin_transaction()

    def produce(self, tp: TopicPartition, records: Sequence[Record]) -> None:
        _produce(self.producer, tp, records, self.deliveries)

    def flush(self, what: str) -> Deliveries:
        """Wait until everything produced in this transaction is acknowledged."""
        from confluent_kafka import KafkaException

        d = self.deliveries
        try:
            self.producer.flush(self.timeout)
        except SystemError as e:
            # a fatal error (this producer was fenced by a newer one of the source) raised
            # while flush served a delivery report reaches Python as a SystemError caused by
            # the KafkaException; the caller needs the KafkaException's meaning
            cause = e.__cause__ or e.__context__
            if isinstance(cause, KafkaException):
                raise log_error(cause, what, self.bootstrap) from cause
            # confluent-kafka sometimes loses the exception altogether ("returned NULL
            # without setting an exception"): the fatal error, the delivery reports or the
            # transaction's own state (its abort) say why
            failure = self._failure(d) or self._abort_reason()
            if failure is not None:
                raise log_error(failure, what, self.bootstrap) from e
            raise LogStorageError(
                f"{what}: the Kafka client failed without saying why ({e}); the transaction "
                "was aborted"
            ) from e
        if d.pending:
            raise LogStorageError(
                f"{what}: the Kafka cluster at {self.bootstrap} did not acknowledge "
                f"{d.pending} records within {self.timeout:.0f} s"
            )
        if d.error is not None:
            raise log_error(self._failure(d), what, self.bootstrap)
        return d

    def commit(self) -> None:
        """Commit; retries what librdkafka calls retriable until the timeout."""
        from confluent_kafka import KafkaException

        from log.kafka.errors import error_code

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.producer.commit_transaction(self.timeout)
                return
            except KafkaException as e:
                err = error_code(e)
                if err is not None and err.retriable() and time.monotonic() < deadline:
                    continue
                raise

    def abort(self) -> bool:
        """Abort the open transaction; False when that failed and the producer must go.

        Errors are logged, not raised: the caller is already failing with a better one. A
        producer whose abort failed may still hold an open (or fenced) transaction, so the
        log replaces it; the new one's ``init_transactions`` aborts whatever is left.
        """
        from confluent_kafka import KafkaException

        try:
            self.producer.abort_transaction(self.timeout)
        except KafkaException as e:
            _log.warning("aborting the transaction of %r failed: %s", self.transactional_id, e)
            return False
        return True

    def close(self) -> None:
        """Let go of the producer; a fatal one raises on flush, which changes nothing here."""
        from confluent_kafka import KafkaException

        try:
            self.producer.flush(0)
        except KafkaException as e:
            _log.debug("closing the producer of %r: %s", self.transactional_id, e)
