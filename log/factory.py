"""Opening the log a pipeline names: ``open_log("embedded" | "kafka", path, ...)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.errors import UsageError
from log.api import Durability, Log, TopicConfig
from log.embedded import EmbeddedLog

__all__ = ["BACKENDS", "open_log"]

BACKENDS = ("embedded", "kafka")


def open_log(
    backend: str,
    path: Path,
    durability: Durability = Durability(),  # noqa: B008 - frozen dataclass, never mutated
    default_topic_config: TopicConfig = TopicConfig(),  # noqa: B008
    *,
    read_only: bool = False,
    kafka: Any = None,
    **options: Any,
) -> Log:
    """Open (and recover) a log.

    ``read_only`` opens it for inspection next to the process that writes it (see
    :class:`~log.embedded.EmbeddedLog`). ``kafka`` is the kafka backend's cluster settings.
    Further ``options`` go to the backend (for the embedded one: ``clock``,
    ``background_jobs``, ``retention_check_interval_ms``, ``compaction_interval_ms``,
    ``index_interval_bytes``).
    """
    if backend == "embedded":
        return EmbeddedLog(path, durability, default_topic_config, read_only=read_only, **options)
    if backend == "kafka":
        if kafka is None:
            raise UsageError("log backend 'kafka' needs a log.kafka section with bootstrap")
        from log.kafka import KafkaLog  # confluent-kafka only when the kafka backend is used

        return KafkaLog(
            kafka.bootstrap,
            client_config=kafka.config,
            replication_factor=kafka.replication_factor,
            min_insync_replicas=kafka.min_insync_replicas,
            default_topic_config=default_topic_config,
            read_only=read_only,
            **options,
        )
    raise UsageError(f"unknown log backend {backend!r}: use one of {', '.join(BACKENDS)}")
