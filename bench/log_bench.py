"""Benchmark of the embedded log against the physical limit of this machine.

Measures in one run, on one disk:

* append throughput for 100-byte and 1 KiB records (8-byte key + value), batches of 1,000,
  fsync per batch (durability ``batch``), beside the raw limit: the same key and value bytes
  written with one ``os.write`` + ``os.fdatasync`` per batch, no framing;
* sequential read throughput of what was just appended (from the page cache: this is the
  decode cost, not the disk's);
* append-to-read latency of a long-polling reader while a writer appends 10,000 records/s
  (batches of 10 every millisecond), measured from just before ``append`` to the reader
  holding the record;
* resident memory of the process while it writes ``--memory-gb`` GB of 1 KiB records.

Prints a table and writes ``bench/results/log.json``::

    .venv/bin/python bench/log_bench.py                  # the recorded run (5 GB)
    .venv/bin/python bench/log_bench.py --memory-gb 0.5  # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from log.api import Durability, Record, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

BATCH = 1000
KEY_BYTES = 8
TP = TopicPartition("bench", 0)
RESULTS = Path(__file__).resolve().parent / "results" / "log.json"


def make_batches(record_bytes: int, distinct: int = 8) -> list[list[Record]]:
    """A few distinct batches of random records, cycled by the writers."""
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


@contextmanager
def opened(path: Path, **kwargs: Any) -> Iterator[EmbeddedLog]:
    log = EmbeddedLog(path, Durability("batch"), background_jobs=False, **kwargs)
    try:
        log.create_topic(TP.topic, TopicConfig(retention_ms=None))
        yield log
    finally:
        log.close()


def bench_append(work: Path, record_bytes: int, batches: int, rounds: int = 5) -> dict[str, Any]:
    """Ours and raw in alternating rounds, so that both see the same (shared) disk."""
    data = make_batches(record_bytes)
    payload = [b"".join(r.key + r.value for r in batch) for batch in data]  # type: ignore[operator]
    per_round = batches // rounds
    raw_path = work / f"raw-{record_bytes}.bin"
    fd = os.open(raw_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    ours = raw = 0.0
    try:
        with opened(work / f"append-{record_bytes}") as log:
            for i in range(5):  # warm up: first segment, file creation
                log.append(TP, data[i % len(data)])
                os.write(fd, payload[i % len(payload)])
                os.fdatasync(fd)
            n = 0
            for _ in range(rounds):
                start = time.perf_counter()
                for i in range(n, n + per_round):
                    log.append(TP, data[i % len(data)])
                ours += time.perf_counter() - start
                start = time.perf_counter()
                for i in range(n, n + per_round):
                    os.write(fd, payload[i % len(payload)])
                    os.fdatasync(fd)
                raw += time.perf_counter() - start
                n += per_round
    finally:
        os.close(fd)
        raw_path.unlink()
    done = per_round * rounds
    mb = record_bytes * BATCH * done / 1e6
    return {
        "record_bytes": record_bytes,
        "batches": done,
        "records_per_s": round(BATCH * done / ours),
        "mb_per_s": round(mb / ours, 1),
        "raw_records_per_s": round(BATCH * done / raw),
        "raw_mb_per_s": round(mb / raw, 1),
        "ratio_to_raw": round(raw / ours, 3),
    }


def bench_read(work: Path, record_bytes: int) -> dict[str, Any]:
    with opened(work / f"append-{record_bytes}") as log:
        end = log.end_offset(TP)
        n = 0
        start = time.perf_counter()
        offset = 0
        while offset < end:
            got = log.read(TP, offset, max_records=10_000, max_bytes=8 * 1024 * 1024)
            n += len(got)
            offset = got[-1].offset + 1
        took = time.perf_counter() - start
    return {
        "record_bytes": record_bytes,
        "records": n,
        "records_per_s": round(n / took),
        "mb_per_s": round(n * record_bytes / took / 1e6, 1),
    }


def bench_latency(
    work: Path, seconds: float, rate: int = 10_000, per_batch: int = 10
) -> dict[str, Any]:
    latencies: list[int] = []
    appends: list[int] = []
    with opened(work / "latency") as log:
        stop = threading.Event()

        def reader() -> None:
            offset = 0
            while not stop.is_set():
                got = log.read(TP, offset, timeout=0.5)
                now = time.perf_counter_ns()
                for r in got:
                    assert r.value is not None
                    latencies.append(now - int(r.value[:20]))
                if got:
                    offset = got[-1].offset + 1

        t = threading.Thread(target=reader)
        t.start()
        interval = per_batch / rate
        total = int(seconds * rate / per_batch)
        start = time.perf_counter()
        for i in range(total):
            due = start + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing the writer to the target rate
            now = time.perf_counter_ns()
            log.append(TP, [Record(b"k", b"%020d" % now + b"." * 80)] * per_batch)
            appends.append(time.perf_counter_ns() - now)
        achieved = total * per_batch / (time.perf_counter() - start)
        end = log.end_offset(TP)
        deadline = time.monotonic() + 10
        while len(latencies) < end and time.monotonic() < deadline:
            stop.wait(0.01)
        stop.set()
        t.join()
    latencies.sort()
    appends.sort()

    def pct(p: float, values: list[int] = latencies) -> float:
        return round(values[min(int(p * len(values)), len(values) - 1)] / 1e6, 3)

    return {
        "target_records_per_s": rate,
        "achieved_records_per_s": round(achieved),
        "records": len(latencies),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        # how long append itself took (encode, write, fdatasync): the disk's share
        "append_p50_ms": pct(0.50, appends),
        "append_p99_ms": pct(0.99, appends),
    }


def bench_memory(work: Path, gigabytes: float) -> dict[str, Any]:
    data = make_batches(1024)
    batches = int(gigabytes * 1e9 / (1024 * BATCH))
    proc = psutil.Process()
    samples: list[int] = []
    with opened(work / "memory") as log:
        start = time.perf_counter()
        for i in range(batches):
            log.append(TP, data[i % len(data)])
            if i % 50 == 0:
                samples.append(proc.memory_info().rss)
        took = time.perf_counter() - start
        written = log.describe_topic(TP.topic).size_bytes
    shutil.rmtree(work / "memory")
    warm = samples[len(samples) // 10 :] or samples  # after the first tenth: steady state
    return {
        "gigabytes_written": round(written / 1e9, 2),
        "seconds": round(took, 1),
        "rss_mb_start": round(samples[0] / 1e6, 1),
        "rss_mb_min_steady": round(min(warm) / 1e6, 1),
        "rss_mb_max_steady": round(max(warm) / 1e6, 1),
        "rss_growth_mb_steady": round((max(warm) - min(warm)) / 1e6, 1),
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        "append (batches of 1,000, fsync per batch)",
        f"  {'record':>7} {'records/s':>12} {'MB/s':>8} {'raw rec/s':>12} {'raw MB/s':>9} "
        f"{'ratio':>6}",
    ]
    for a in results["append"]:
        lines.append(
            f"  {a['record_bytes']:>6}B {a['records_per_s']:>12,} {a['mb_per_s']:>8} "
            f"{a['raw_records_per_s']:>12,} {a['raw_mb_per_s']:>9} {a['ratio_to_raw']:>6.0%}"
        )
    lines.append("sequential read")
    for r in results["read"]:
        lines.append(f"  {r['record_bytes']:>6}B {r['records_per_s']:>12,} {r['mb_per_s']:>8}")
    lat = results["latency"]
    lines.append(
        f"append-to-read latency at {lat['achieved_records_per_s']:,} records/s: "
        f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms "
        f"(append alone: p50 {lat['append_p50_ms']} ms, p99 {lat['append_p99_ms']} ms)"
    )
    m = results["memory"]
    lines.append(
        f"memory writing {m['gigabytes_written']} GB: RSS {m['rss_mb_min_steady']}-"
        f"{m['rss_mb_max_steady']} MB in steady state (growth {m['rss_growth_mb_steady']} MB)"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--memory-gb", type=float, default=5.0, help="GB to write for the memory run")
    ap.add_argument("--latency-seconds", type=float, default=5.0)
    ap.add_argument("--batches-100", type=int, default=3000, help="batches of 100-byte records")
    ap.add_argument("--batches-1k", type=int, default=1000, help="batches of 1 KiB records")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="log-bench-", dir=args.dir))
    free = shutil.disk_usage(work).free
    need = args.memory_gb * 1e9 * 1.1 + 2e9
    if free < need:
        sys.exit(f"{work} has {free / 1e9:.1f} GB free; this run needs about {need / 1e9:.1f} GB")
    try:
        results: dict[str, Any] = {
            "command": " ".join([".venv/bin/python", "bench/log_bench.py", *sys.argv[1:]]),
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                "python": platform.python_version(),
                "platform": platform.platform(),
                "filesystem_dir": str(work),
            },
            "append": [
                bench_append(work, 100, args.batches_100),
                bench_append(work, 1024, args.batches_1k),
            ],
        }
        results["read"] = [bench_read(work, 100), bench_read(work, 1024)]
        results["latency"] = bench_latency(work, args.latency_seconds)
        results["memory"] = bench_memory(work, args.memory_gb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
