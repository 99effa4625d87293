"""Benchmark of the scheduled batch export to Parquet, beside pyarrow writing the same rows.

Measures in one run, in this process, on one disk:

* **changehub**: ``--rows`` change events (``c`` events as the Postgres source makes them,
  one topic, one partition, all of one day) appended to an embedded log, then one export run
  of a ``type: batch`` sink with ``schedule:`` and ``format: parquet``
  (``connectors.sink.batch.export.run_export``, what ``changehub export SINK`` runs): reading
  the log from the committed offset to the cutoff, decoding each envelope, encoding files
  of ``max_file_records`` rows, writing them under temporary names with fsync and rename,
  the manifest, ``_SUCCESS`` and the offset commit.
* **pyarrow's own limit**: the same rows (the nine columns of changehub's Parquet files,
  already decoded, as Python lists in memory) turned into an Arrow table and written with
  ``pyarrow.parquet.write_table`` to one file per ``max_file_records`` rows, fsync'd.

Rows/s of each and the ratio (goal: changehub ≥ 50 % of pyarrow). Each side runs
``--rounds`` times alternately into fresh directories; the best round of each counts.
Prints a table and writes ``bench/results/export.json``::

    .venv/bin/python bench/export_bench.py                  # 200,000 rows
    .venv/bin/python bench/export_bench.py --rows 50000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.envelope import encode_key, event_records
from connectors.sink.batch import BatchSinkConfig
from connectors.sink.batch.export import run_export
from connectors.sink.batch.parquet import SCHEMA
from log.api import Durability, Record, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "export.json"
TOPIC = "bench.public.items"
TP = TopicPartition(TOPIC, 0)
T0 = 1_769_760_000_000  # 2026-01-30T08:00:00Z: every record on one day


def make_records(count: int) -> list[Record]:
    source = {"connector": "postgres", "name": "bench", "db": "bench", "schema": "public",
              "table": "items", "snapshot": "false"}
    out = []
    for i in range(count):
        row = {"id": i, "name": f"item {i}", "qty": i % 1000, "price": (i % 10000) / 100.0,
               "updated_at": f"2026-01-30T08:00:00.{i % 1000000:06d}Z"}
        ts = T0 + i
        (rec,) = event_records(
            topic=TOPIC, key=encode_key(row, ["id"]), op="c",
            before=None, after=row, source={**source, "lsn": 1000 + i, "ts_ms": ts}, ts_ms=ts,
        )
        out.append(Record(rec.key, rec.value, ts))
    return out


def fill_log(path: Path, records: list[Record]) -> None:
    log_ = EmbeddedLog(path, Durability(policy="batch"), TopicConfig(), background_jobs=False)
    try:
        log_.create_topic(TOPIC, TopicConfig())
        for i in range(0, len(records), 5000):
            log_.append(TP, records[i:i + 5000])
    finally:
        log_.close()


def run_changehub(log_dir: Path, out: Path, file_records: int) -> tuple[float, float, int]:
    """Seconds, CPU seconds (every thread) and records of one export run."""
    config = BatchSinkConfig(name="nightly", topics=["bench.*"], path=out, format="parquet",
                             schedule="0 2 * * *", max_file_records=file_records)
    start, cpu = time.perf_counter(), time.process_time()
    log_ = EmbeddedLog(log_dir, Durability(policy="batch"), TopicConfig(),
                       background_jobs=False)
    try:
        result = run_export(config, log_)
    finally:
        log_.close()
    return time.perf_counter() - start, time.process_time() - cpu, result.records


def columns_in_memory(records: list[Record]) -> dict[str, list[Any]]:
    """The columns of changehub's Parquet files, decoded up front (not timed)."""
    envelopes = [orjson.loads(r.value) for r in records if r.value is not None]

    def text(value: Any) -> str | None:
        return None if value is None else orjson.dumps(value).decode()

    return {
        "offset": list(range(len(records))),
        "timestamp": [r.timestamp_ms for r in records],
        "key": [r.key.decode() if r.key is not None else None for r in records],
        "op": [e["op"] for e in envelopes],
        "ts_ms": [e["ts_ms"] for e in envelopes],
        **{f: [text(e.get(f)) for e in envelopes]
           for f in ("before", "after", "source", "transaction")},
    }


def run_pyarrow(columns: dict[str, list[Any]], out: Path, file_records: int
                ) -> tuple[float, float]:
    out.mkdir(parents=True)
    total = len(columns["offset"])
    start, cpu = time.perf_counter(), time.process_time()
    for n, first in enumerate(range(0, total, file_records)):
        part = {c: v[first:first + file_records] for c, v in columns.items()}
        path = out / f"part-{n}.parquet"
        pq.write_table(pa.table(part, schema=SCHEMA), path)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--file-records", type=int, default=100_000,
                        help="rows per file (the batch sink's max_file_records default)")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory")
    args = parser.parse_args()

    records = make_records(args.rows)
    columns = columns_in_memory(records)
    load = os.getloadavg()
    ours: list[float] = []
    theirs: list[float] = []
    ours_cpu: list[float] = []
    theirs_cpu: list[float] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        work = Path(scratch)
        for n in range(args.rounds):
            log_dir = work / f"log{n}"
            fill_log(log_dir, records)
            seconds, cpu, exported = run_changehub(log_dir, work / f"export{n}",
                                                   args.file_records)
            assert exported == args.rows, exported
            ours.append(seconds)
            ours_cpu.append(cpu)
            seconds, cpu = run_pyarrow(columns, work / f"pyarrow{n}", args.file_records)
            theirs.append(seconds)
            theirs_cpu.append(cpu)
            got = sum(pq.read_metadata(f).num_rows
                      for f in (work / f"export{n}").rglob("*.parquet"))
            assert got == args.rows, got
    a, b = args.rows / min(ours), args.rows / min(theirs)
    results = {
        "rows": args.rows,
        "rounds": args.rounds,
        "file_records": args.file_records,
        "changehub_rows_per_s": round(a),
        "pyarrow_rows_per_s": round(b),
        "ratio": round(a / b, 4),
        "changehub_seconds": [round(s, 3) for s in ours],
        "pyarrow_seconds": [round(s, 3) for s in theirs],
        "changehub_cpu_seconds": [round(s, 3) for s in ours_cpu],
        "pyarrow_cpu_seconds": [round(s, 3) for s in theirs_cpu],
        "cpu_ratio": round(min(theirs_cpu) / min(ours_cpu), 4),
        "pyarrow_version": pa.__version__,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_at_start": [round(x, 2) for x in load],
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
    }
    print(f"{'':<28}{'rows/s':>12}")
    print(f"{'changehub export (Parquet)':<28}{a:>12,.0f}")
    print(f"{'pyarrow from memory':<28}{b:>12,.0f}")
    results["changehub_cpu_us_per_row"] = round(min(ours_cpu) / args.rows * 1e6, 2)
    results["pyarrow_cpu_us_per_row"] = round(min(theirs_cpu) / args.rows * 1e6, 2)
    print(f"ratio {a / b:.1%} (goal >= 50%); CPU seconds (best) {min(ours_cpu):.2f} vs "
          f"pyarrow's {min(theirs_cpu):.2f} ({results['cpu_ratio']:.1%}; "
          f"{results['changehub_cpu_us_per_row']} vs {results['pyarrow_cpu_us_per_row']} us "
          f"a row); load average {results['machine']['loadavg_at_start']} at start, "
          f"{results['machine']['loadavg_at_end']} at end")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
