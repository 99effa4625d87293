"""Benchmark of Postgres -> changehub -> search index against the engine's own bulk ingest.

Measures in one run, on one PostgreSQL (``services/run up postgres``) and one search node
(``services/run up opensearch`` or ``elasticsearch``; or the servers given by ``--dsn`` and
``--search-url``), with the pipeline running in this process (``hub.runtime.Hub``, embedded
log with fsync per batch, the search sink with its defaults: 1,000 documents per bulk, 2 in
flight, a flush every 20,000 records or 1 s, external versions):

* **end-to-end throughput**: ``--rows`` rows inserted in transactions of 1,000 rows while the
  pipeline streams; changes/s from the first commit to the moment all rows are searchable;
* **commit-to-searchable latency**: ``--latency-rows`` single-row transactions, one every
  20 ms; for each, the time from its commit to the first search that finds it (searches poll
  every 10 ms; the index's ``refresh_interval`` is ``--refresh`` and is part of the figure);
* **the engine's limit**: the same documents, pre-built as bulk bodies (the same action lines
  as the sink's: ``index`` with ``_id``, ``version``, ``version_type: external``), indexed into
  a fresh index with the same settings, mappings, bulk size and concurrency, from this
  process; ``--limit-runs`` runs (all but one before the pipeline, one after), the best
  counts.

Before anything is measured the engine is **warmed up**: the JVM's JIT compilers (C1/C2)
spend more CPU than the indexing itself in a fresh node's first few hundred thousand
documents (measured: 74 s of C2 CPU beside 91 s of indexing threads), so whichever run came
first paid for them (the first limit run used 3x the CPU per document of the second, and the
pipeline, run next, about 2x). Rounds of the same bulks go into a throwaway index until a
round's compiler CPU is below 15% of the engine's and its CPU per document within 20% of the
round before (``--warmup-rounds`` and ``--warmup-s`` at most); then one short pipeline run
(50,000 rows, not counted), whose traffic makes the engine compile a little more.

Prints a table and writes ``bench/results/search.json``::

    .venv/bin/python bench/search_bench.py                     # OpenSearch, 100,000 rows
    .venv/bin/python bench/search_bench.py --engine elasticsearch --rows 50000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import opensearchpy
import psutil
import psycopg

from connectors.sink.search.bulk import split
from connectors.sink.search.config import SearchSinkConfig
from connectors.sink.search.documents import Action
from connectors.sink.search.engine import connect
from connectors.sink.search.mapping import infer_mappings
from hub.config import load_pipeline
from hub.runtime import Hub

# The limit run sends bulks as the sink does with its defaults (the pipeline runs with them):
# the same documents per request, bytes per request and requests in flight on both sides.
_DEFAULTS = SearchSinkConfig.model_fields
BULK_ACTIONS: int = _DEFAULTS["bulk_actions"].default
BULK_BYTES: int = _DEFAULTS["bulk_bytes"].default
CONCURRENCY: int = _DEFAULTS["concurrency"].default

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "search.json"
DDL = ("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int NOT NULL, "
       "price numeric(10,2) NOT NULL, updated_at timestamptz NOT NULL)")
INSERT = ("INSERT INTO items SELECT g, 'item ' || g, g %% 1000, (g %% 10000) / 100.0, "
          "now() FROM generate_series(%s::bigint, %s::bigint) g")
PIPELINE = """
log: {{backend: embedded, path: {log}}}
api: {{enabled: false}}
sources:
  - name: bench
    type: postgres
    dsn: "{dsn}"
    tables: [public.items]
    snapshot: initial
    heartbeat_interval: 1s
sinks:
  - name: search
    type: {engine}
    topics: ["bench.*"]
    hosts: ["{url}"]
    index: "{{table}}"
    settings: {{refresh_interval: "{refresh}"}}
    flush_interval: {flush}
"""


@contextmanager
def service(name: str, given: str | None, key: str, work: Path) -> Iterator[str]:
    """``given``, or fact ``key`` of a server started for the run."""
    if given:
        yield given
        return
    with started(name, work) as facts:
        yield facts[key]


@contextmanager
def started(name: str, work: Path) -> Iterator[dict[str, str]]:
    """``services/run up NAME`` under ``work``: its KEY=VALUE facts; down afterwards."""
    run = ROOT / "services" / "run"
    directory = work / name
    directory.mkdir()
    out = subprocess.run([str(run), "up", name, "--dir", str(directory)], check=True,
                         capture_output=True, text=True).stdout
    facts = dict(line.split("=", 1) for line in out.split())
    try:
        yield {k: v.strip("'") for k, v in facts.items()}
    finally:
        subprocess.run([str(run), "down", name, "--dir", str(directory)], check=False,
                       capture_output=True)


class CpuMeter:
    """CPU seconds (user + system) used by groups of processes, children included, between
    :meth:`start` and :meth:`stop`. On a machine shared with other work, wall-clock rates
    move with the load; the CPU a run costs per document moves far less, so the results
    give both."""

    def __init__(self, groups: dict[str, list[int]], jvm: int | None = None) -> None:
        self._groups = groups
        self._jvm = jvm
        self._at_start: dict[str, float] = {}
        self._jit_at_start = 0.0
        self.used: dict[str, float] = {}
        self.jit_used = 0.0  # of which the JVM ``jvm``'s JIT compilers (see jit_cpu_s)

    def start(self) -> None:
        self._at_start = self._now()
        self._jit_at_start = jit_cpu_s(self._jvm) if self._jvm else 0.0

    def stop(self) -> dict[str, float]:
        now = self._now()
        self.used = {g: round(now[g] - self._at_start[g], 2) for g in now}
        if self._jvm:
            self.jit_used = round(jit_cpu_s(self._jvm) - self._jit_at_start, 2)
        return self.used

    def _now(self) -> dict[str, float]:
        return {group: sum(_cpu_s(pid) for pid in pids) for group, pids in self._groups.items()}


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by each live thread of this process, by thread name (a
    pool's threads summed under their prefix), from ``/proc/self/task/TID/stat``."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
            utime, stime = fields.rsplit(")", 1)[1].split()[11:13]
        except (OSError, ValueError):
            continue
        name = thread.name.rsplit("_", 1)[0] if thread.name[-1:].isdigit() else thread.name
        out[name] = out.get(name, 0.0) + (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")
    return out


def _cpu_s(pid: int) -> float:
    """CPU of ``pid`` and its live children (a child that exited is not counted)."""
    try:
        process = psutil.Process(pid)
        total = 0.0
        for p in (process, *process.children(recursive=True)):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


def listener_pid(url: str) -> int:
    """The process listening on ``url``'s port (the search node, Postgres)."""
    port = int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port \
                and conn.pid:
            return conn.pid
    raise SystemExit(f"no process of this machine listens on {url}")


def postgres_pid(dsn: str) -> int:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return listener_pid(f"http://{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}")


def cpu_figures(used: dict[str, float], docs: int) -> dict[str, Any]:
    """CPU seconds per 1,000 documents, per group and in total."""
    per_k = {g: round(v * 1000 / docs, 3) for g, v in used.items()}
    return {"cpu_s": used, "cpu_s_per_1000_docs": per_k,
            "cpu_s_per_1000_docs_total": round(sum(per_k.values()), 3)}


def count(client: opensearchpy.OpenSearch, index: str) -> int:
    """Documents searchable now. No forced refresh: polling with one would make the engine
    cut a segment every 50 ms while it ingests, slowing down what is being measured; the
    index's refresh_interval decides, for the pipeline and the limit run alike."""
    if not client.indices.exists(index=index):
        return 0
    try:
        return int(client.count(index=index)["count"])
    except opensearchpy.TransportError as exc:
        if exc.status_code == 503:  # just created: its shard is not started yet
            return 0
        raise


def wait_for(predicate: Any, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def end_to_end(args: argparse.Namespace, dsn: str, url: str, work: Path) -> dict[str, Any]:
    fresh_table(dsn)
    client = opensearchpy.OpenSearch([url], timeout=60)
    client.indices.delete(index="items*", ignore_unavailable=True)
    pipeline = work / "pipeline.yaml"
    pipeline.write_text(PIPELINE.format(log=work / "log", dsn=dsn, url=url,
                                        engine=args.engine, refresh=args.refresh,
                                        flush=args.flush_interval))
    # Postgres counts in every run: its walsender decoding the WAL is part of the work (the
    # inserts are too, the same in every run).
    engine_pid = listener_pid(url)
    meter = CpuMeter({"changehub": [os.getpid()], "engine": [engine_pid],
                      "postgres": [postgres_pid(dsn)]}, jvm=engine_pid)
    hub = Hub(load_pipeline(pipeline))
    hub.start()
    try:
        figures = workload(dsn, client, "items", args.rows, args.latency_rows, meter)
    finally:
        hub.stop()
        client.close()
    return {**figures, "refresh_interval": args.refresh, "flush_interval": args.flush_interval}


def fresh_table(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute(DDL)


def workload(
    dsn: str, client: opensearchpy.OpenSearch, index: str, rows: int, latency_rows: int,
    meter: CpuMeter,
) -> dict[str, Any]:
    """The measured workload, with a pipeline (changehub or a peer) mirroring ``items`` into
    ``index``: throughput of ``rows`` rows in 1,000-row transactions (with ``meter`` running),
    then latency."""
    # A first row makes the index and proves the pipeline runs.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(INSERT, (0, 0))
    wait_for(lambda: count(client, index) == 1, 120, "the pipeline to start")

    meter.start()
    threads_at_start = thread_cpu_s()
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for lo in range(1, rows + 1, 1000):
            conn.execute(INSERT, (lo, min(lo + 999, rows)))
    committed = time.perf_counter() - started
    wait_for(lambda: count(client, index) == rows + 1, 900, "all rows to be searchable")
    elapsed = time.perf_counter() - started
    used = meter.stop()
    threads = {name: round(cpu - threads_at_start.get(name, 0.0), 2)
               for name, cpu in sorted(thread_cpu_s().items())}

    latencies = commit_to_searchable(dsn, client, index, rows + 1, latency_rows)
    ordered = sorted(latencies)
    return {
        "rows": rows,
        "insert_s": round(committed, 2),
        "end_to_end_s": round(elapsed, 2),
        "end_to_end_changes_per_s": round(rows / elapsed),
        "latency_rows": len(latencies),
        "latency_p50_ms": round(statistics.median(ordered) * 1000, 1),
        "latency_p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
                                * 1000, 1),
        "latency_max_ms": round(ordered[-1] * 1000, 1),
        **cpu_figures(used, rows),
        "engine_jit_cpu_s": meter.jit_used,
        # this process's threads (the pipeline's, and the benchmark's own MainThread)
        "thread_cpu_s": {name: cpu for name, cpu in threads.items() if cpu > 0},
    }


def commit_to_searchable(
    dsn: str, client: opensearchpy.OpenSearch, index: str, first_id: int, n: int
) -> list[float]:
    committed: dict[int, float] = {}
    seen: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set() or len(seen) < len(committed):
            pending = [i for i in committed if i not in seen]
            if pending:
                hits = client.search(index=index, body={
                    "query": {"ids": {"values": [str(i) for i in pending]}}, "size": len(pending),
                    "_source": False})["hits"]["hits"]
                now = time.perf_counter()
                for h in hits:
                    seen.setdefault(int(h["_id"]), now)
            time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(first_id, first_id + n):
            conn.execute(INSERT, (i, i))
            committed[i] = time.perf_counter()
            time.sleep(0.02)  # the pace of the writer
    done.set()
    poller.join(120)
    return [seen[i] - committed[i] for i in committed if i in seen]


def document(g: int) -> dict[str, Any]:
    """Row ``g`` of the workload as the pipeline makes it a document."""
    return {"id": g, "name": f"item {g}", "qty": g % 1000,
            "price": f"{(g % 10000) / 100:.2f}", "updated_at": "2026-01-01T00:00:00.000000Z"}


def index_body(refresh: str) -> dict[str, Any]:
    """The settings and mappings the sink gives the index it creates: every run's index gets
    them, so the engine does the same work per document in all."""
    return {
        "settings": {"refresh_interval": refresh, "index.gc_deletes": "1h"},
        "mappings": infer_mappings(document(g) for g in range(1, 1001)),
    }


def jit_cpu_s(pid: int) -> float:
    """CPU seconds the JVM ``pid``'s JIT compiler threads (``C1/C2 CompilerThread``) used so
    far, from ``/proc/PID/task/*``; 0 where that cannot be read (not Linux, not a JVM)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            if not (task / "comm").read_text().startswith(("C1 Compiler", "C2 Compiler")):
                continue
            # Fields after the ")" that ends comm: utime and stime are the 12th and 13th.
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def engine_limit(
    args: argparse.Namespace, url: str, index: str = "items-limit", rows: int | None = None
) -> dict[str, Any]:
    """The same documents, pre-built, bulk-indexed straight into a fresh index."""
    rows = rows or args.rows
    client = opensearchpy.OpenSearch([url], timeout=60, pool_maxsize=4)
    # The sink's own client (orjson answers, trimmed bulk answers), so that the limit is the
    # engine's, not a slower client's.
    engine = connect(args.engine, [url], timeout=60, pool_size=4)
    client.indices.delete(index=index, ignore_unavailable=True)
    actions = [Action("index", index, str(g), g + 1, document(g)) for g in range(1, rows + 1)]
    client.indices.create(index=index, body=index_body(args.refresh))
    bodies = [b"".join(e for _, e in chunk)
              for chunk in split([(a, a.encode()) for a in actions], BULK_ACTIONS, BULK_BYTES)]
    pid = listener_pid(url)
    meter = CpuMeter({"client": [os.getpid()], "engine": [pid]}, jvm=pid)
    meter.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        for answer in pool.map(engine.bulk, bodies):
            assert not answer["errors"]
    wait_for(lambda: count(client, index) == rows, 600, "the engine's own ingest")
    elapsed = time.perf_counter() - started
    used = meter.stop()
    client.indices.delete(index=index)
    client.close()
    engine.close()
    return {"rows": rows, "seconds": round(elapsed, 2),
            "docs_per_s": round(rows / elapsed), **cpu_figures(used, rows),
            "engine_jit_cpu_s": meter.jit_used}


WARMUP_JIT_SHARE = 0.15  # a round is warm when the JIT used less than this share of the CPU
WARMUP_STEADY = 0.2  # ... and its CPU per document moved less than this from the last round


def warm_up(args: argparse.Namespace, url: str) -> list[dict[str, Any]]:
    """Rounds of the limit's bulks into a throwaway index until the engine is warm (see the
    module doc); the rounds' figures, for the results."""
    rows = 50_000  # whatever --rows is: the JIT needs the documents, not the run's count
    rounds: list[dict[str, Any]] = []
    deadline = time.monotonic() + args.warmup_s
    while len(rounds) < args.warmup_rounds and time.monotonic() < deadline:
        run = engine_limit(args, url, index="items-warmup", rows=rows)
        rounds.append(run)
        print(f"  warm-up round {len(rounds)}: {run['docs_per_s']:,} docs/s, engine "
              f"{run['cpu_s_per_1000_docs']['engine']} CPU s per 1,000 docs, JIT "
              f"{run['engine_jit_cpu_s']} of {run['cpu_s']['engine']} s", flush=True)
        if len(rounds) >= 2 and is_warm(rounds[-2], rounds[-1]):
            break
    return rounds


def is_warm(previous: dict[str, Any], last: dict[str, Any]) -> bool:
    """The engine's JIT is (nearly) done: ``last`` spent under 15% of the engine's CPU in
    the compilers, and its CPU per document is within 20% of ``previous``'s."""
    engine = float(last["cpu_s"]["engine"])
    before = float(previous["cpu_s_per_1000_docs"]["engine"])
    now = float(last["cpu_s_per_1000_docs"]["engine"])
    return (engine > 0 and float(last["engine_jit_cpu_s"]) < WARMUP_JIT_SHARE * engine
            and abs(now - before) <= WARMUP_STEADY * before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["opensearch", "elasticsearch"], default="opensearch")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--latency-rows", type=int, default=300)
    parser.add_argument("--refresh", default="1s", help="index refresh_interval")
    parser.add_argument("--flush-interval", default="1s", help="the sink's flush_interval")
    parser.add_argument("--limit-runs", type=int, default=3,
                        help="runs of the engine's limit (one after the pipeline), best counts")
    parser.add_argument("--warmup-rounds", type=int, default=12,
                        help="at most this many warm-up rounds of 50,000 documents")
    parser.add_argument("--warmup-s", type=float, default=150,
                        help="no warm-up round starts after this many seconds")
    parser.add_argument("--dsn", help="a PostgreSQL with wal_level=logical (default: start one)")
    parser.add_argument("--search-url", help="a search node (default: start one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load_at_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="changehub-searchbench-"))
    os.chmod(work, 0o755)
    key = "OPENSEARCH_URL" if args.engine == "opensearch" else "ELASTICSEARCH_URL"
    try:
        with service("postgres", args.dsn, "PG_DSN", work) as dsn, \
                service(args.engine, args.search_url, key, work) as url:
            warmup = warm_up(args, url)
            # The pipeline's own traffic makes the engine compile some more (its searches,
            # its real timestamps): one short pipeline run on the warm engine, not counted.
            (work / "warmup").mkdir()
            end_to_end(argparse.Namespace(**{**vars(args), "rows": min(args.rows, 50_000),
                                             "latency_rows": 20}), dsn, url, work / "warmup")
            # The limit is measured before and after the pipeline, and the best run counts:
            # on a shared machine the load changes during a run.
            limits = [engine_limit(args, url) for _ in range(max(1, args.limit_runs - 1))]
            e2e = end_to_end(args, dsn, url, work)
            if args.limit_runs > 1:
                limits.append(engine_limit(args, url))
            limit = max(limits, key=lambda r: r["docs_per_s"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "engine": args.engine,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_start": load_at_start,
                    "load_avg_at_end": os.getloadavg()},
        "end_to_end": e2e,
        "engine_limit": limit,
        "engine_limit_runs": limits,
        "engine_warmup_rounds": warmup,
        "bulk": {"actions": BULK_ACTIONS, "bytes": BULK_BYTES, "in_flight": CONCURRENCY,
                 "compression": "none (both clients' default)"},
        "ratio_to_limit": round(e2e["end_to_end_changes_per_s"] / limit["docs_per_s"], 3),
        "goal": 0.7,
        "cpu_ratio_to_limit": cpu_ratio(e2e, *limits),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"engine {args.engine}, {args.rows} rows, refresh_interval {args.refresh}; both "
          f"sides: {BULK_ACTIONS:,} docs or {BULK_BYTES // 1024 // 1024} MB per bulk, "
          f"{CONCURRENCY} bulks in flight, no compression, kept-alive connections")
    print(f"  end to end           {e2e['end_to_end_changes_per_s']:>10,} changes/s")
    runs = ", ".join(f"{r['docs_per_s']:,}" for r in limits)
    print(f"  engine bulk limit    {limit['docs_per_s']:>10,} docs/s (best of {len(limits)} "
          f"runs, the last after the pipeline: {runs}; warmed up by {len(warmup)} rounds)")
    print(f"  ratio                {result['ratio_to_limit']:>10.0%}  (goal >= 70%: "
          f"{'met' if result['ratio_to_limit'] >= 0.7 else 'not met'})")
    print(f"  commit->searchable   p50 {e2e['latency_p50_ms']} ms, p99 {e2e['latency_p99_ms']} ms")
    print(f"  CPU s per 1,000 docs end to end {e2e['cpu_s_per_1000_docs']}, limit runs "
          + ", ".join(str(r["cpu_s_per_1000_docs"]) for r in limits))
    print(f"  engine JIT CPU s     end to end {e2e['engine_jit_cpu_s']}, limit runs "
          + ", ".join(str(r["engine_jit_cpu_s"]) for r in limits))
    print("  engine CPU s per 1,000 docs without its JIT: end to end "
          f"{engine_cpu_without_jit(e2e)}, limit runs "
          + ", ".join(str(engine_cpu_without_jit(r)) for r in limits))
    print(f"  pipeline CPU s by thread (end to end) {e2e['thread_cpu_s']}")
    print(f"  CPU ratio            {result['cpu_ratio_to_limit']:>10.0%}  (limit's CPU per "
          "document / the pipeline's, Postgres left out)")
    print(f"written to {RESULTS}")


def engine_cpu_without_jit(run: dict[str, Any]) -> float:
    """The engine's CPU per 1,000 documents of a run, its JIT compilers' left out: the work
    the documents themselves cost it (the same in all runs if the bulks are alike)."""
    engine = float(run["cpu_s"]["engine"]) - float(run["engine_jit_cpu_s"])
    return round(engine * 1000 / int(run["rows"]), 3)


def cpu_ratio(e2e: dict[str, Any], *limits: dict[str, Any]) -> float:
    """The limit runs' CPU per document (the cheaper one) over the pipeline's, Postgres left
    out (its inserts are the workload, not the pipeline; its walsender is a small part): the
    share of the engine's ingest rate the pipeline would reach if CPU were the only limit."""
    pipeline: float = sum(v for g, v in e2e["cpu_s_per_1000_docs"].items() if g != "postgres")
    limit: float = min(r["cpu_s_per_1000_docs_total"] for r in limits)
    return round(limit / pipeline, 3)


if __name__ == "__main__":
    main()
