"""A running hub as the API shows it: connectors, offsets, topics, the pipeline graph.

Read-only and safe from any thread: workers publish immutable status snapshots, the log is
thread-safe, and connector configs are frozen. Every string that could carry a secret (errors,
checkpoints, configs) passes :func:`hub.secrets.redact` on the way out.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import psutil

from connectors.api import SinkConfig, SourceConfig, dead_letter_topic
from hub.api import models
from hub.errors import ChangehubError
from hub.metrics import (
    RateTracker,
    current_progress,
    effective_state,
    measure_sink,
    sink_partitions,
    source_lag,
)
from hub.schedule import ScheduledExportWorker
from hub.secrets import mask, redact
from hub.sink_worker import SinkWorker, match_topics
from hub.source_worker import SourceWorker
from hub.worker import Worker
from log.api import Log, TopicPartition

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["connector_view", "offsets_view", "status_view", "topics_view"]


def connector_view(hub: Hub, worker: Worker, rates: RateTracker) -> models.Connector:
    s = worker.status
    lag: models.Lag | None = None
    upstream: float | None = None
    if isinstance(worker, SinkWorker | ScheduledExportWorker):
        measured = measure_sink(hub, worker)
        lag = models.Lag(records=measured.records, seconds=measured.seconds)
    elif isinstance(worker, SourceWorker):
        upstream = source_lag(worker).get("lag_bytes")
    state = effective_state(s)
    progress = None
    work = current_progress(s)
    if work is not None:
        what, done, total = work
        progress = models.Progress(what=what, done=done, total=total)
    return models.Connector(
        name=s.name,
        kind=s.kind,
        type=s.type,
        state=state.value,
        error=mask(s.error) if s.error else None,
        since=s.since,
        records=s.records,
        records_per_second=rates.observe(s.name, s.records),
        retries=s.retries,
        dead_letters=s.dead_letters,
        progress=progress,
        lag=lag,
        upstream_lag_bytes=upstream,
        topics=connector_topics(hub, worker),
        checkpoint=redact(s.checkpoint) if s.checkpoint is not None else None,
        config=_config_of(hub, s.name),
    )


def connector_topics(hub: Hub, worker: Worker) -> list[str]:
    name = worker.status.name
    topics = hub.log.list_topics()
    if isinstance(worker, SinkWorker | ScheduledExportWorker):
        cfg = next(c for c in hub.config.sinks if c.name == name)
        return match_topics(list(cfg.topics), topics)
    written = {t for t in topics if t.startswith(f"{name}.")}
    connector = getattr(worker, "connector", None)
    if connector is not None:
        # topics() of a source between attempts may fail: what the log has will do then
        with contextlib.suppress(Exception):
            written.update(connector.topics())
    return sorted(written)


def _config_of(hub: Hub, name: str) -> dict[str, Any]:
    configs: list[SourceConfig | SinkConfig] = [*hub.config.sources, *hub.config.sinks]
    for cfg in configs:
        if cfg.name == name:
            data: dict[str, Any] = redact(cfg.model_dump(mode="json", by_alias=True))
            return data
    return {}


def offsets_view(hub: Hub, worker: Worker) -> models.Offsets:
    s = worker.status
    if isinstance(worker, SinkWorker | ScheduledExportWorker):
        measured = measure_sink(hub, worker)
        parts = [
            models.PartitionOffsets(
                topic=tp.topic, partition=tp.partition, committed=at, start=start, end=end,
                lag=max(0, end - max(at if at is not None else start, start)),
            )
            for tp, (at, start, end) in sorted(measured.partitions.items())
        ]
        return models.Offsets(name=s.name, kind="sink", partitions=parts, checkpoint=None)
    checkpoint = hub.log.last_checkpoint(s.name)
    return models.Offsets(
        name=s.name, kind="source", partitions=[],
        checkpoint=redact(checkpoint) if checkpoint is not None else None,
    )


def topics_view(log: Log) -> list[models.Topic]:
    out = []
    for name in log.list_topics():
        try:
            info = log.describe_topic(name)
        except ChangehubError:
            continue  # deleted between the listing and now
        parts = [
            models.TopicPartitionInfo(partition=p.partition, start=p.start_offset,
                                      end=p.end_offset, size_bytes=p.size_bytes)
            for p in info.partitions
        ]
        out.append(models.Topic(
            name=name, cleanup=info.config.cleanup, size_bytes=info.size_bytes,
            records=sum(p.end - p.start for p in parts), partitions=parts,
        ))
    return out


def status_view(hub: Hub, rates: RateTracker) -> models.Status:
    connectors = [connector_view(hub, w, rates) for w in hub.workers()]
    edges = []
    for c in connectors:
        for topic in c.topics:
            if c.kind == "source":
                edges.append(models.Edge(source=c.name, target=topic))
            else:
                edges.append(models.Edge(source=topic, target=c.name))
    return models.Status(
        pipeline=str(hub.config.path),
        time=time.time(),
        memory_bytes=psutil.Process().memory_info().rss,
        connectors=connectors,
        topics=topics_view(hub.log),
        edges=edges,
    )


def sink_partitions_of(hub: Hub, name: str, topic_glob: str | None) -> list[TopicPartition]:
    """Partitions a sink reads (only those of topics matching ``topic_glob``, if given)."""
    cfg = next(c for c in hub.config.sinks if c.name == name)
    patterns = [topic_glob] if topic_glob else list(cfg.topics)
    return sink_partitions(hub.log, patterns, exclude=dead_letter_topic(cfg))
