"""The internal log: one interface (:mod:`log.api`), two backends (embedded files; Kafka)."""

from log.api import (
    Durability,
    Log,
    LogRecord,
    OffsetSpec,
    PartitionInfo,
    Record,
    TopicConfig,
    TopicInfo,
    TopicPartition,
)

__all__ = [
    "Durability",
    "Log",
    "LogRecord",
    "OffsetSpec",
    "PartitionInfo",
    "Record",
    "TopicConfig",
    "TopicInfo",
    "TopicPartition",
]
