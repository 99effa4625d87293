"""A sink's partitions are shared by the hub processes running it, and move when one joins
or leaves without loss or duplicates: hub A exports a Kafka topic alone, hub B joins (the
group gives it some partitions, A flushes and commits them first), then B stops (it flushes
and commits, A takes its partitions back) while records keep arriving. Hub A's sink is not
restarted by either rebalance: only the moved partitions leave and come back, the others
are written on throughout. Each process writes
its own files (a batch sink's relative path, each in its own directory), so every offset of
the topic must be in exactly one file of one of them."""

from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path

import orjson
import pytest

from log.api import Record, TopicConfig, TopicPartition
from log.kafka import KafkaLog
from tests.fixtures.services import KafkaCluster
from tests.integration.kafka.conftest import unique
from tests.integration.scaleout.hubs import Hub, wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 4


def exported(hub: Hub, topic: str) -> Counter[tuple[int, int]]:
    """How often each (partition, offset) is in the data files of ``hub``'s directory."""
    seen: Counter[tuple[int, int]] = Counter()
    for path in (hub.cwd / "exports" / topic).rglob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            row = orjson.loads(line)
            seen[row["partition"], row["offset"]] += 1
    return seen


def assignments(hub: Hub, group: str) -> int:
    return len(re.findall(rf"group {re.escape(group)}: assigned \S", hub.text()))


def test_a_sink_shares_partitions_with_a_joining_hub_and_takes_them_back_when_it_leaves(
    kafka: KafkaCluster, tmp_path: Path
) -> None:
    topic, sink = unique("rebalance"), unique("files")
    log = KafkaLog(kafka.bootstrap, timeout=20.0)
    log.create_topic(topic, TopicConfig(partitions=PARTITIONS))
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        f"""
log: {{backend: kafka, kafka: {{bootstrap: "{kafka.bootstrap}"}}}}
api: {{enabled: false}}
sinks:
  - name: {sink}
    type: batch
    topics: ["{topic}"]
    path: ./exports
    format: jsonl
    flush_interval: 200ms
"""
    )
    stop = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        n = 0
        try:
            while not stop.is_set():
                records = [
                    Record(
                        orjson.dumps({"id": i}),
                        orjson.dumps(
                            {
                                "before": None,
                                "after": {"id": i},
                                "op": "c",
                                "ts_ms": 0,
                                "source": {"name": "test"},
                            }
                        ),
                    )
                    for i in range(n, n + 10)
                ]
                log.append(TopicPartition(topic, (n // 10) % PARTITIONS), records)
                n += 10
                stop.wait(0.02)  # pace the writer, not a synchronisation
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        with Hub("a", config, tmp_path / "a", {}) as a:
            wait_until(lambda: sum(exported(a, topic).values()) > 100, "hub a to export")
            with Hub("b", config, tmp_path / "b", {}) as b:
                wait_until(lambda: sum(exported(b, topic).values()) > 50, "hub b to export")
                a.check_alive()
                before = assignments(a, sink)
                assert b.stop() == 0, b.text()[-4000:]
            wait_until(lambda: assignments(a, sink) > before, "hub a to take them back")
            so_far = sum(exported(a, topic).values())
            wait_until(lambda: sum(exported(a, topic).values()) > so_far + 50, "hub a to go on")
            stop.set()
            writer.join(30)
            assert not failures, failures
            ends = {p: log.end_offset(TopicPartition(topic, p)) for p in range(PARTITIONS)}
            every = {(p, o) for p, end in ends.items() for o in range(end)}

            def complete() -> bool:
                return set(exported(a, topic) + exported(b, topic)) >= every

            wait_until(complete, "every record in a file")
            a.check_alive()
            # the partitions hub a kept were written on through both rebalances: its sink
            # was started once, and only the moved partitions were dropped and added
            started, moved = f"sink {sink} started at", "moved to another process"
            assert a.says(started) == 1, a.text()[-4000:]
            assert a.says(moved) >= 1 and a.says(f"sink {sink}: added") >= 1, a.text()[-4000:]
            assert b.says(started) == 1, b.text()[-4000:]
            assert a.stop() == 0, a.text()[-4000:]
        both = exported(a, topic) + exported(b, topic)
        assert set(both) == every
        twice = sorted(k for k, n in both.items() if n > 1)
        assert not twice, f"{len(twice)} records exported twice, e.g. {twice[:5]}"
        # the partitions really were shared: both hubs exported some of them
        assert exported(a, topic) and exported(b, topic)
    finally:
        stop.set()
        log.close()
