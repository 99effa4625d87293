"""Benchmark of the Kafka backend beside librdkafka's own producer and consumer.

Both talk to the same one-broker Kafka (started with ``services/run up kafka`` in a temporary
directory unless ``--bootstrap`` names a cluster) in the same run, with the same records
(8-byte key + value, batches of 1,000) and the same durability (``acks=all``, idempotence):

* **append**: ``KafkaLog.append`` of each batch (returns once every record is acknowledged),
  beside librdkafka's producer doing the same thing — produce the batch, ``flush()`` — and
  beside librdkafka's best case, producing everything and flushing once at the end (no
  caller waits for anything; the figure a fire-and-forget client gets);
* **checkpointed append**: ``KafkaLog.append_checkpointed`` of each batch with a
  checkpoint (one Kafka transaction each, the source path), beside librdkafka's
  transactional producer doing begin / produce / commit per batch;
* **sequential read**: ``KafkaLog.read`` through what was appended, beside a bare
  ``read_committed`` consumer's ``consume()`` loop;
* **append-to-read latency**: one thread appends 10 records every millisecond for a few
  seconds, another long-polls with ``read(timeout=…)``.

Prints a table and writes ``bench/results/kafka.json``::

    .venv/bin/python bench/kafka_bench.py                 # the recorded run
    .venv/bin/python bench/kafka_bench.py --records 20000 # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from log.api import Record, TopicConfig, TopicPartition
from log.kafka import KafkaLog

BATCH = 1000
KEY_BYTES = 8
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "kafka.json"
DURABLE = {"acks": "all", "enable.idempotence": True, "linger.ms": 1}


def make_batches(record_bytes: int, distinct: int = 8) -> list[list[Record]]:
    value_bytes = record_bytes - KEY_BYTES
    out = []
    for b in range(distinct):
        blob = os.urandom(value_bytes * BATCH)
        out.append(
            [
                Record(b"%08d" % (b * BATCH + i), blob[i * value_bytes : (i + 1) * value_bytes])
                for i in range(BATCH)
            ]
        )
    return out


def topic(log: KafkaLog, prefix: str) -> TopicPartition:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    log.create_topic(name, TopicConfig(partitions=1, retention_ms=None))
    return TopicPartition(name, 0)


def rate(records: int, record_bytes: int, seconds: float) -> dict[str, float]:
    return {
        "records_per_s": round(records / seconds),
        "mb_per_s": round(records * record_bytes / seconds / 1e6, 1),
    }


def bench_append(log: KafkaLog, bootstrap: str, record_bytes: int, batches: int) -> dict[str, Any]:
    data = make_batches(record_bytes)
    out: dict[str, Any] = {"record_bytes": record_bytes, "batches": batches}

    tp = topic(log, "ours")
    log.append(tp, data[0])  # warm up: producer, metadata, connection
    start = time.perf_counter()
    for i in range(batches):
        log.append(tp, data[i % len(data)])
    out["changehub_append"] = rate(batches * BATCH, record_bytes, time.perf_counter() - start)

    raw = Producer({"bootstrap.servers": bootstrap, **DURABLE})
    tp = topic(log, "raw")
    for sync in (True, False):
        _produce(raw, tp, data[0])
        raw.flush()
        start = time.perf_counter()
        for i in range(batches):
            _produce(raw, tp, data[i % len(data)])
            if sync:
                raw.flush()
        raw.flush()
        key = "librdkafka_flush_per_batch" if sync else "librdkafka_one_flush"
        out[key] = rate(batches * BATCH, record_bytes, time.perf_counter() - start)
    out["changehub_vs_librdkafka_per_batch"] = round(
        out["changehub_append"]["records_per_s"]
        / out["librdkafka_flush_per_batch"]["records_per_s"],
        3,
    )
    return out


def _produce(producer: Any, tp: TopicPartition, batch: list[Record]) -> None:
    for r in batch:
        while True:
            try:
                producer.produce(tp.topic, r.value, r.key, partition=tp.partition)
                break
            except BufferError:
                producer.poll(0.05)
    producer.poll(0)


def bench_transactions(log: KafkaLog, bootstrap: str, batches: int) -> dict[str, Any]:
    data = make_batches(100)
    source = f"bench-{uuid.uuid4().hex[:8]}"
    tp = topic(log, "txn")
    log.append_checkpointed(source, {tp: data[0]}, {"n": 0})  # warm up: init_transactions
    start = time.perf_counter()
    for i in range(batches):
        log.append_checkpointed(source, {tp: data[i % len(data)]}, {"n": i + 1})
    ours = time.perf_counter() - start

    raw = Producer({"bootstrap.servers": bootstrap, **DURABLE, "transactional.id": source + "-raw"})
    raw.init_transactions()
    tp = topic(log, "txn-raw")
    checkpoints = topic(log, "txn-raw-checkpoints")  # not changehub's: that one is the hub's
    start = time.perf_counter()
    for i in range(batches):
        raw.begin_transaction()
        _produce(raw, tp, data[i % len(data)])
        raw.produce(checkpoints.topic, b'{"n": %d}' % i, source.encode(), partition=0)
        raw.commit_transaction()
    theirs = time.perf_counter() - start
    return {
        "record_bytes": 100,
        "batches": batches,
        "changehub_append_checkpointed": rate(batches * BATCH, 100, ours),
        "changehub_ms_per_transaction": round(ours / batches * 1000, 2),
        "librdkafka_transaction_per_batch": rate(batches * BATCH, 100, theirs),
        "librdkafka_ms_per_transaction": round(theirs / batches * 1000, 2),
    }


def bench_read(log: KafkaLog, bootstrap: str, record_bytes: int, batches: int) -> dict[str, Any]:
    data = make_batches(record_bytes)
    tp = topic(log, "read")
    for i in range(batches):
        log.append(tp, data[i % len(data)])
    total = batches * BATCH

    start = time.perf_counter()
    offset = n = 0
    while n < total:
        got = log.read(tp, offset, timeout=5.0)
        n += len(got)
        offset = got[-1].offset + 1
    ours = time.perf_counter() - start

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-raw",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    c.assign([KafkaTopicPartition(tp.topic, 0, 0)])
    start = time.perf_counter()
    n = 0
    while n < total:
        n += sum(1 for m in c.consume(10_000, 5.0) if m.error() is None)
    theirs = time.perf_counter() - start
    c.close()
    return {
        "record_bytes": record_bytes,
        "records": total,
        "changehub_read": rate(total, record_bytes, ours),
        "librdkafka_consume": rate(total, record_bytes, theirs),
    }


def bench_latency(log: KafkaLog, seconds: float) -> dict[str, Any]:
    tp = topic(log, "latency")
    sent: dict[bytes, int] = {}
    latencies: list[int] = []
    appends: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        offset = 0
        while not stop.is_set():
            for r in log.read(tp, offset, timeout=0.2):
                latencies.append(time.perf_counter_ns() - sent[r.value or b""])
                offset = r.offset + 1

    t = threading.Thread(target=reader)
    t.start()
    n = 0
    start = time.perf_counter()
    next_at = start
    while time.perf_counter() - start < seconds:
        batch = [Record(b"k", b"%d" % (n + i)) for i in range(10)]
        now = time.perf_counter_ns()
        for r in batch:
            sent[r.value or b""] = now
        log.append(tp, batch)
        appends.append(time.perf_counter_ns() - now)
        n += 10
        next_at += 0.001
        time.sleep(max(0.0, next_at - time.perf_counter()))
    achieved = n / (time.perf_counter() - start)
    deadline = time.monotonic() + 10
    while len(latencies) < n and time.monotonic() < deadline:
        stop.wait(0.01)
    stop.set()
    t.join()
    latencies.sort()
    appends.sort()

    def pct(p: float, values: list[int] = latencies) -> float:
        return round(values[min(int(p * len(values)), len(values) - 1)] / 1e6, 3)

    return {
        "target_records_per_s": 10_000,
        "achieved_records_per_s": round(achieved),
        "records": len(latencies),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "append_p50_ms": pct(0.50, appends),
        "append_p99_ms": pct(0.99, appends),
    }


def table(results: dict[str, Any]) -> str:
    lines = ["| measure | changehub | librdkafka |", "|---|---|---|"]
    for a in results["append"]:
        size = f"{a['record_bytes']} B"
        lines.append(
            f"| append {size}, records/s (MB/s) | {a['changehub_append']['records_per_s']:,} "
            f"({a['changehub_append']['mb_per_s']}) | flush per batch "
            f"{a['librdkafka_flush_per_batch']['records_per_s']:,} "
            f"({a['librdkafka_flush_per_batch']['mb_per_s']}); one flush "
            f"{a['librdkafka_one_flush']['records_per_s']:,} "
            f"({a['librdkafka_one_flush']['mb_per_s']}) |"
        )
    t = results["transactions"]
    lines.append(
        f"| checkpointed append 100 B, records/s (ms per transaction of 1,000) | "
        f"{t['changehub_append_checkpointed']['records_per_s']:,} "
        f"({t['changehub_ms_per_transaction']}) | "
        f"{t['librdkafka_transaction_per_batch']['records_per_s']:,} "
        f"({t['librdkafka_ms_per_transaction']}) |"
    )
    for r in results["read"]:
        lines.append(
            f"| sequential read {r['record_bytes']} B, records/s | "
            f"{r['changehub_read']['records_per_s']:,} | "
            f"{r['librdkafka_consume']['records_per_s']:,} |"
        )
    lat = results["latency"]
    lines.append(
        f"| append-to-read latency at {lat['achieved_records_per_s']:,} records/s | "
        f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms (append p50 {lat['append_p50_ms']} "
        f"ms, p99 {lat['append_p99_ms']} ms) | |"
    )
    return "\n".join(lines)


def start_kafka(directory: Path) -> str:
    run = [str(ROOT / "services" / "run"), "up", "kafka", "--dir", str(directory)]
    out = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    facts = dict(line.split("=", 1) for line in out.split() if "=" in line)
    return facts["KAFKA_BOOTSTRAP"].strip("'")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bootstrap", default=None, help="an existing cluster (default: start one)")
    ap.add_argument("--records", type=int, default=200_000, help="records per append run")
    ap.add_argument("--transactions", type=int, default=100, help="checkpointed appends")
    ap.add_argument("--latency-seconds", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    batches = max(1, args.records // BATCH)
    work = Path(tempfile.mkdtemp(prefix="changehub-kafka-bench-"))
    bootstrap = args.bootstrap or start_kafka(work)
    try:
        log = KafkaLog(bootstrap)
        try:
            results: dict[str, Any] = {
                "machine": {
                    "python": sys.version.split()[0],
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(),
                },
                "kafka": "one broker on loopback (services/run up kafka)",
                "append": [
                    bench_append(log, bootstrap, 100, batches),
                    bench_append(log, bootstrap, 1024, max(1, batches // 2)),
                ],
                "transactions": bench_transactions(log, bootstrap, args.transactions),
                "read": [bench_read(log, bootstrap, 100, batches)],
                "latency": bench_latency(log, args.latency_seconds),
            }
        finally:
            log.close()
    finally:
        if args.bootstrap is None:
            subprocess.run(
                [str(ROOT / "services" / "run"), "down", "kafka", "--dir", str(work)], check=False
            )
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
