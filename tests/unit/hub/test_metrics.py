"""Rates from observed totals, the state shown for a source still snapshotting, and what a
Prometheus scrape of a hub carries."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hub.metrics import RateTracker, current_progress, effective_state, hub_registry
from hub.state import ConnectorState, ConnectorStatus
from log.api import Record, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_is_records_per_second_over_the_window() -> None:
    clock = Clock()
    rates = RateTracker(window_s=10.0, clock=clock)
    assert rates.observe("s", 0) == 0.0
    clock.now += 2
    assert rates.observe("s", 200) == 100.0
    clock.now += 2
    assert rates.observe("s", 600) == 150.0


def test_old_samples_leave_the_window() -> None:
    clock = Clock()
    rates = RateTracker(window_s=10.0, clock=clock)
    rates.observe("s", 0)
    clock.now += 20
    rates.observe("s", 10_000)  # a burst long ago
    clock.now += 20
    assert rates.observe("s", 10_000) == 0.0  # nothing since


def test_a_restarted_worker_counting_from_zero_is_not_a_negative_rate() -> None:
    clock = Clock()
    rates = RateTracker(clock=clock)
    rates.observe("s", 500)
    clock.now += 1
    assert rates.observe("s", 10) == 0.0
    clock.now += 1
    assert rates.observe("s", 20) == 10.0


def _status(state: ConnectorState, checkpoint: dict[str, object] | None,
            kind: str = "source") -> ConnectorStatus:
    return ConnectorStatus("x", kind, "postgres", state=state,  # type: ignore[arg-type]
                           checkpoint=checkpoint)


def test_a_running_source_with_snapshot_progress_shows_snapshotting() -> None:
    running = ConnectorState.RUNNING
    assert effective_state(_status(running, {"lsn": 1, "snapshot": {"rows": 5}})) \
        == ConnectorState.SNAPSHOTTING
    assert effective_state(_status(running, {"lsn": 1, "incremental": {"pending": ["t"]}})) \
        == ConnectorState.SNAPSHOTTING
    assert effective_state(_status(running, {"lsn": 1})) == running
    assert effective_state(_status(running, None)) == running
    paused = ConnectorState.PAUSED
    assert effective_state(_status(paused, {"snapshot": {"rows": 5}})) == paused


def test_progress_is_shown_only_while_a_source_snapshots() -> None:
    running = ConnectorState.RUNNING
    initial = replace(_status(running, {"snapshot": {"rows": 5}}),
                      progress=("snapshot public.t", 5, 10))
    assert current_progress(initial) == ("snapshot public.t", 5, 10)
    streaming = replace(_status(running, {"lsn": 9}), progress=("snapshot public.t", 10, 10))
    assert current_progress(streaming) is None
    incremental = replace(
        _status(running, {"lsn": 9, "incremental": {"pending": ["public.u"], "rows": 40}}),
        progress=("snapshot public.t", 10, 10),
    )
    assert current_progress(incremental) == ("incremental snapshot public.u", 40, None)


class _Worker:
    """What the collector reads of a running worker: status, committed offsets, connector."""

    def __init__(self, status: ConnectorStatus, connector: object = None,
                 committed: dict[TopicPartition, int] | None = None) -> None:
        self.status = status
        self.connector = connector
        self.committed = committed or {}


def _scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for s in family.samples}


def test_a_scrape_has_every_figure_an_operator_alerts_on(tmp_path: Path) -> None:
    log = EmbeddedLog(tmp_path / "log", background_jobs=False)
    tp = TopicPartition("shop.public.orders", 0)
    log.create_topic(tp.topic, TopicConfig())
    sent_ms = int(time.time() * 1000) - 30_000
    log.append(tp, [Record(b"k%d" % i, b"v" * 100, sent_ms) for i in range(10)])
    shop = _Worker(
        ConnectorStatus("shop", "source", "postgres", state=ConnectorState.RUNNING,
                        records=10, retries=2, checkpoint={"lsn": 1, "snapshot": {"rows": 4}},
                        progress=("snapshot public.orders", 4, 10)),
        connector=SimpleNamespace(metrics=lambda: {"lag_bytes": 2048, "lag_seconds": 1.5}))
    search = _Worker(
        ConnectorStatus("search", "sink", "opensearch", state=ConnectorState.RETRYING,
                        records=6, retries=3, dead_letters=1),
        connector=SimpleNamespace(metrics=lambda: {"bulk_ms": 12.5}), committed={tp: 6})
    sink_config = SimpleNamespace(name="search", topics=["shop.*"],
                                  errors=SimpleNamespace(dead_letter_topic=None))
    hub = SimpleNamespace(log=log, config=SimpleNamespace(sinks=[sink_config]),
                          workers=lambda: [shop, search])
    clock = Clock()
    registry = hub_registry(hub, RateTracker(clock=clock))
    try:
        _scrape(registry)  # the rates' first sample
        clock.now += 2
        shop.status = replace(shop.status, records=210)
        got = _scrape(registry)
    finally:
        log.close()

    def value(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    source, sink = {"connector": "shop", "kind": "source"}, {"connector": "search", "kind": "sink"}
    assert value("changehub_connector_state", **source, type="postgres",
                 state="SNAPSHOTTING") == 1.0
    assert value("changehub_connector_state", **sink, type="opensearch", state="RETRYING") == 1.0
    assert value("changehub_connector_records_per_second", **source) == 100.0
    assert value("changehub_connector_records_total", **sink) == 6
    assert value("changehub_connector_retries_total", **sink) == 3
    assert value("changehub_source_lag_bytes", source="shop") == 2048
    assert value("changehub_source_lag_seconds", source="shop") == 1.5
    assert value("changehub_progress_done", connector="shop", what="snapshot public.orders") == 4
    assert value("changehub_progress_total", connector="shop", what="snapshot public.orders") == 10
    assert value("changehub_sink_lag_records", sink="search") == 4
    assert 29 <= value("changehub_sink_lag_seconds", sink="search") < 300
    assert value("changehub_sink_dead_letters_total", sink="search") == 1
    assert value("changehub_sink_bulk_ms", sink="search") == 12.5
    assert value("changehub_topic_records", topic=tp.topic) == 10
    assert value("changehub_topic_size_bytes", topic=tp.topic) > 1000
    assert value("changehub_process_resident_memory_bytes") > 10 * 2**20
