"""The Kafka backend of the log (see :mod:`log.kafka.backend`).

confluent-kafka is imported only when a :class:`KafkaLog` is made, so the embedded backend
works without it.
"""

from __future__ import annotations

from log.kafka.backend import CHECKPOINT_TOPIC, KafkaLog

__all__ = ["CHECKPOINT_TOPIC", "KafkaLog"]
