"""What the hub measures, computed when asked: for the REST API, the status page and Prometheus.

Nothing here counts per record: the workers already keep totals in their status
(:class:`~hub.state.ConnectorStatus`), the log knows its offsets and sizes, and a connector
may expose its own numbers with an optional ``metrics() -> dict`` method (the search sink's
bulk latency and documents/s, say). A scrape reads those, so an idle hub costs nothing.

Rates (records per second) come from a :class:`RateTracker` that remembers the totals it saw
on earlier reads; a worker restarted from durable state starts counting from zero again,
which the tracker takes as a new series rather than a negative rate.

Lag of a sink is measured against the log: records = end offset minus committed offset, summed
over the partitions the sink reads; seconds = age of the oldest record not yet committed.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from connectors.api import Offsets, dead_letter_topic
from hub.errors import ChangehubError
from hub.sink_worker import match_topics
from hub.state import ConnectorState, ConnectorStatus
from log.api import Log, TopicPartition

__all__ = [
    "HubCollector",
    "RateTracker",
    "SinkLag",
    "connector_extras",
    "current_progress",
    "effective_state",
    "hub_registry",
    "measure_sink",
    "sink_lag",
    "sink_partitions",
    "source_lag",
]

# Rates are averaged over this window: long enough to smooth batch-sized steps, short enough
# that the status page shows a stall within seconds.
RATE_WINDOW_S = 10.0
_MIN_SPAN_S = 0.5

_METRIC_NAME = re.compile(r"[^a-zA-Z0-9_]")


class RateTracker:
    """Records per second per connector, from totals observed over time. Thread-safe."""

    def __init__(
        self, window_s: float = RATE_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    def observe(self, key: str, total: int) -> float:
        """Note ``total`` now; return the rate over the window (0.0 until two samples)."""
        now = self._clock()
        with self._lock:
            samples = self._samples.setdefault(key, deque())
            if samples and total < samples[-1][1]:
                samples.clear()  # the worker restarted and counts from zero again
            samples.append((now, total))
            while len(samples) > 2 and now - samples[1][0] >= self._window:
                samples.popleft()
            first_t, first_total = samples[0]
            span = now - first_t
            if span < _MIN_SPAN_S:
                return 0.0
            return (total - first_total) / span


def effective_state(status: ConnectorStatus) -> ConnectorState:
    """The state to show: SNAPSHOTTING for a RUNNING source whose durable checkpoint still
    carries snapshot progress (an initial snapshot, or tables pending in an incremental one;
    the Postgres and MySQL sources keep it under ``snapshot`` / ``incremental``)."""
    cp = status.checkpoint
    if status.state == ConnectorState.RUNNING and status.kind == "source" and cp and (
        cp.get("snapshot") or cp.get("incremental")
    ):
        return ConnectorState.SNAPSHOTTING
    return status.state


def current_progress(status: ConnectorStatus) -> tuple[str, int, int | None] | None:
    """Long work going on now: a sink's reported progress; a source's only while it is
    SNAPSHOTTING — from its reporter during an initial snapshot, from its checkpoint during
    an incremental one (which reports none: pending tables and rows read so far)."""
    if status.kind == "sink":
        return status.progress
    if effective_state(status) != ConnectorState.SNAPSHOTTING:
        return None
    cp = status.checkpoint or {}
    incremental = cp.get("incremental")
    if not cp.get("snapshot") and isinstance(incremental, dict):
        pending = incremental.get("pending") or ["?"]
        rows = incremental.get("rows")
        return (f"incremental snapshot {pending[0]}", int(rows) if isinstance(rows, int) else 0,
                None)
    return status.progress


@dataclass(frozen=True)
class SinkLag:
    records: int
    seconds: float
    partitions: dict[TopicPartition, tuple[int | None, int, int]]  # committed, start, end


def sink_partitions(log: Log, patterns: list[str], exclude: str | None = None
                    ) -> list[TopicPartition]:
    """The partitions a sink with topic ``patterns`` reads (its dead-letter topic excluded)."""
    out: list[TopicPartition] = []
    for topic in match_topics(patterns, log.list_topics()):
        if topic == exclude:
            continue
        try:
            n = log.topic_config(topic).partitions
        except ChangehubError:
            continue  # deleted between the listing and now
        out.extend(TopicPartition(topic, p) for p in range(n))
    return out


def sink_lag(log: Log, committed: Offsets, partitions: list[TopicPartition],
             now_ms: int | None = None) -> SinkLag:
    """How far a sink with ``committed`` offsets is behind the end of ``partitions``."""
    behind = 0
    oldest: int | None = None
    detail: dict[TopicPartition, tuple[int | None, int, int]] = {}
    for tp in partitions:
        try:
            start, end = log.start_offset(tp), log.end_offset(tp)
            at = committed.get(tp)
            position = max(at if at is not None else start, start)
            detail[tp] = (at, start, end)
            if end <= position:
                continue
            behind += end - position
            first = log.read(tp, position, max_records=1, max_bytes=1)
        except ChangehubError:
            continue  # deleted meanwhile, or retention moved past: nothing to measure
        if first:
            ts = first[0].timestamp_ms
            oldest = ts if oldest is None else min(oldest, ts)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    seconds = 0.0 if oldest is None else max(0.0, (now - oldest) / 1000)
    return SinkLag(behind, seconds, detail)


class SinkLike(Protocol):
    """A worker running a sink: continuous (SinkWorker) or scheduled (ScheduledExportWorker)."""

    @property
    def status(self) -> ConnectorStatus: ...

    @property
    def committed(self) -> dict[TopicPartition, int]: ...


def measure_sink(hub: Any, worker: SinkLike) -> SinkLag:
    """The lag of a running hub's sink worker, against the topics its config names."""
    cfg = next(c for c in hub.config.sinks if c.name == worker.status.name)
    parts = sink_partitions(hub.log, list(cfg.topics), exclude=dead_letter_topic(cfg))
    return sink_lag(hub.log, worker.committed, parts)


def connector_extras(worker: object) -> dict[str, float]:
    """The numeric entries of the running connector's optional ``metrics()``, if it has one.

    A connector's numbers are read from another thread than its own; a connector that
    cannot answer right now (stopped between attempts, busy swapping state) is skipped.
    """
    connector = getattr(worker, "connector", None)
    out: dict[str, float] = {}
    probe = getattr(connector, "metrics", None)
    if callable(probe):
        try:
            values = probe()
        except Exception:  # a metrics read must never take the API down
            values = {}
        if isinstance(values, Mapping):
            for k, v in values.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    out[str(k)] = float(v)
    return out


def source_lag(worker: object) -> dict[str, float]:
    """Upstream lag a source knows about: ``lag_bytes``/``lag_seconds`` from its
    ``metrics()`` (MySQL: binlog behind the durable checkpoint; Postgres: seconds since the
    commit of the last durable change), and replication slot bytes (Postgres keeps its last
    measurement as ``lag``)."""
    out = {k: v for k, v in connector_extras(worker).items()
           if k in ("lag_bytes", "lag_seconds")}
    lag = getattr(getattr(worker, "connector", None), "lag", None)
    value = getattr(lag, "lag_bytes", None)
    if isinstance(value, int):
        out["lag_bytes"] = float(value)
    return out


def _label_name(key: str) -> str:
    return _METRIC_NAME.sub("_", key).lower()


class HubCollector(Collector):
    """Prometheus families computed at scrape time from a running :class:`~hub.runtime.Hub`."""

    def __init__(self, hub: Any, rates: RateTracker) -> None:
        self._hub = hub
        self._rates = rates
        self._process = psutil.Process()

    def collect(self) -> Iterator[Metric]:
        hub = self._hub
        log: Log = hub.log
        state = GaugeMetricFamily(
            "changehub_connector_state",
            "1 for the state each connector is in",
            labels=["connector", "kind", "type", "state"],
        )
        records = CounterMetricFamily(
            "changehub_connector_records",
            "records moved since the worker started (sources: into the log; sinks: into "
            "the target)",
            labels=["connector", "kind"],
        )
        rate = GaugeMetricFamily(
            "changehub_connector_records_per_second",
            f"records per second over the last {RATE_WINDOW_S:.0f}s",
            labels=["connector", "kind"],
        )
        retries = CounterMetricFamily(
            "changehub_connector_retries", "retries after transient errors",
            labels=["connector", "kind"],
        )
        dead = CounterMetricFamily(
            "changehub_sink_dead_letters", "records sent to the dead-letter topic",
            labels=["sink"],
        )
        lag_records = GaugeMetricFamily(
            "changehub_sink_lag_records", "records in the log not yet committed by the sink",
            labels=["sink"],
        )
        lag_seconds = GaugeMetricFamily(
            "changehub_sink_lag_seconds", "age of the oldest record the sink has not committed",
            labels=["sink"],
        )
        src_lag_bytes = GaugeMetricFamily(
            "changehub_source_lag_bytes",
            "upstream changes not yet durable in the log (Postgres: WAL behind the "
            "replication slot; MySQL: binlog after the last checkpoint)",
            labels=["source"],
        )
        src_lag_seconds = GaugeMetricFamily(
            "changehub_source_lag_seconds",
            "now minus the commit time of the last change the log made durable (0 when "
            "caught up)",
            labels=["source"],
        )
        progress_done = GaugeMetricFamily(
            "changehub_progress_done", "long work (snapshot, export): units done",
            labels=["connector", "what"],
        )
        progress_total = GaugeMetricFamily(
            "changehub_progress_total", "long work (snapshot, export): units in all, if known",
            labels=["connector", "what"],
        )
        extras: dict[str, GaugeMetricFamily] = {}
        for worker in hub.workers():
            s: ConnectorStatus = worker.status
            shown = effective_state(s)
            for st in ConnectorState:
                state.add_metric([s.name, s.kind, s.type, st.value],
                                 1.0 if shown == st else 0.0)
            records.add_metric([s.name, s.kind], s.records)
            rate.add_metric([s.name, s.kind], self._rates.observe(s.name, s.records))
            retries.add_metric([s.name, s.kind], s.retries)
            work = current_progress(s)
            if work is not None:
                what, done, total = work
                progress_done.add_metric([s.name, what], done)
                if total is not None:
                    progress_total.add_metric([s.name, what], total)
            if worker.status.kind == "sink":
                dead.add_metric([s.name], s.dead_letters)
                lag = self._sink_lag(worker)
                lag_records.add_metric([s.name], lag.records)
                lag_seconds.add_metric([s.name], lag.seconds)
            elif worker.status.kind == "source":
                upstream = source_lag(worker)
                if "lag_bytes" in upstream:
                    src_lag_bytes.add_metric([s.name], upstream["lag_bytes"])
                if "lag_seconds" in upstream:
                    src_lag_seconds.add_metric([s.name], upstream["lag_seconds"])
            for key, value in connector_extras(worker).items():
                if key.startswith("lag_") or key in ("records", "dead_letters"):
                    continue  # measured above, from the log, the same way for every sink
                name = f"changehub_{s.kind}_{_label_name(key)}"
                family = extras.get(name)
                if family is None:
                    family = extras[name] = GaugeMetricFamily(
                        name, f"{key}, as the {s.kind} connector reports it", labels=[s.kind]
                    )
                family.add_metric([s.name], value)
        yield from (state, records, rate, retries, dead, lag_records, lag_seconds,
                    src_lag_bytes, src_lag_seconds, progress_done, progress_total)
        yield from extras.values()
        yield from self._topics(log)
        memory = GaugeMetricFamily(
            "changehub_process_resident_memory_bytes", "resident memory of the hub process"
        )
        memory.add_metric([], self._process.memory_info().rss)
        yield memory

    def _sink_lag(self, worker: SinkLike) -> SinkLag:
        return measure_sink(self._hub, worker)

    def _topics(self, log: Log) -> Iterator[Metric]:
        size = GaugeMetricFamily("changehub_topic_size_bytes", "bytes a topic holds on disk",
                                 labels=["topic"])
        held = GaugeMetricFamily("changehub_topic_records",
                                 "records a topic holds (end minus start offsets)",
                                 labels=["topic"])
        end = CounterMetricFamily("changehub_topic_end_offset",
                                  "offsets written to a topic (sum over partitions)",
                                  labels=["topic"])
        for name in log.list_topics():
            try:
                info = log.describe_topic(name)
            except ChangehubError:
                continue
            size.add_metric([name], info.size_bytes)
            held.add_metric([name], sum(p.end_offset - p.start_offset for p in info.partitions))
            end.add_metric([name], sum(p.end_offset for p in info.partitions))
        yield from (size, held, end)


def hub_registry(hub: Any, rates: RateTracker) -> CollectorRegistry:
    """A registry of its own per API app (not the global one: tests run many hubs)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub, rates))
    return registry
