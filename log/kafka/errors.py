"""Kafka client errors translated into the log's error tree (:mod:`hub.errors`).

librdkafka reports everything as a :class:`confluent_kafka.KafkaError` with a code; the log's
callers only know :class:`~hub.errors.LogError` and its subclasses, so every call into the
client goes through :func:`log_error`. Connection trouble names the bootstrap servers, because
that is what the user has to check.
"""

from __future__ import annotations

from typing import Any

from hub.errors import (
    LogError,
    LogStorageError,
    SourceFencedError,
    UnknownTopicError,
    UsageError,
)

__all__ = ["error_code", "log_error"]


def error_code(exc: BaseException) -> Any:
    """The ``KafkaError`` inside a ``KafkaException`` (or the ``KafkaError`` itself), else None."""
    from confluent_kafka import KafkaError, KafkaException

    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    if isinstance(exc, KafkaError):
        return exc
    return None


def log_error(exc: BaseException, what: str, bootstrap: str) -> LogError | UsageError:
    """The log error for a failed client call; ``what`` says what was being done."""
    from confluent_kafka import KafkaError

    err = error_code(exc)
    if err is None:
        return LogStorageError(f"{what} on the Kafka cluster at {bootstrap} failed: {exc}")
    code = err.code()
    detail = err.str()
    if code in (
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
    ):
        return UnknownTopicError(f"{what}: no such topic or partition on {bootstrap} ({detail})")
    if code in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH):
        # a newer producer with the same transactional id started: another hub process
        # took the source over (scale-out), and this one must stop writing
        return SourceFencedError(
            f"{what}: the source was taken over by another process (its producer was fenced "
            f"on {bootstrap}); this process stands by"
        )
    if code in (
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.INVALID_CONFIG,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.INVALID_PARTITIONS,
        KafkaError.POLICY_VIOLATION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ):
        return UsageError(f"{what}: the Kafka cluster at {bootstrap} refused: {detail}")
    if code in (
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._RESOLVE,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    ):
        return LogStorageError(
            f"{what}: the Kafka cluster at {bootstrap} did not answer or has too few live "
            f"brokers ({detail}); check log.kafka.bootstrap and that the brokers run"
        )
    return LogStorageError(f"{what} on the Kafka cluster at {bootstrap} failed: {detail}")
