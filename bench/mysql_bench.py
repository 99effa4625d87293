"""Benchmark of the MySQL / MariaDB source against the bare library loop and mariadb-binlog.

Measures in one run, on one MariaDB started by ``services/run up mariadb`` (or the server of
``--url``), on the same binlog:

* **changehub**: the source (snapshot: never) reading ``--rows`` single-row inserts, written
  as ``--statements`` multi-row INSERTs, into the durable embedded log (fsync per batch):
  changes/s from the first to the last change durable in the log;
* **bare mysql-replication loop**: ``BinLogStreamReader`` over the same binlog, touching
  every row's values and nothing else — the library's own decoding speed;
* **mariadb-binlog** ``--read-from-remote-server --base64-output=DECODE-ROWS -v`` over the
  same range to /dev/null: what the server can send and a C decoder can decode;
* **commit-to-log latency**: a writer process commits ``--latency-rate`` single-row inserts
  per second for ``--latency-seconds`` over ``--latency-connections`` connections; the
  latency runs from the commit's acknowledgement to the change's batch being durable in the
  log (and, beside it, from just before the INSERT, which adds the server's own commit).

Beside changes/s, the CPU time of the benchmark's process per change (changehub: reader
thread, appending thread and the log's own threads; bare loop: the loop), which the load of
a shared machine disturbs far less than wall-clock rates.

Prints a table and writes ``bench/results/mysql.json``::

    .venv/bin/python bench/mysql_bench.py                 # the recorded run
    .venv/bin/python bench/mysql_bench.py --rows 20000    # quicker
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
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import WriteRowsEvent

from connectors.api import ConnectorContext
from connectors.envelope import decode_value
from connectors.source.mysql.source import MySqlSource, MySqlSourceConfig
from hub.gc_pause import freeze_startup_objects
from hub.source_worker import route
from log.api import TopicConfig
from log.embedded import EmbeddedLog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # services/ (the servers' scripts) is not an installed package
from services.java import Bundle, jdk  # noqa: E402

BUNDLE = Bundle(
    "bench-debezium-mysql-2.7.3.Final",
    ROOT / "bench" / "debezium" / "mysql-pom.xml",
    launcher=ROOT / "bench" / "debezium" / "DebeziumMySqlProbe.java",
)
RESULTS = ROOT / "bench" / "results" / "mysql.json"
DB = "bench"
# The latency workloads' rows: changehub's, then Debezium's (after the bulk rows' ids).
CHANGEHUB_IDS = 10_000_000
DEBEZIUM_IDS = 20_000_000
TABLE_DDL = (
    "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT NOT NULL, "
    "price DECIMAL(10,2) NOT NULL, updated_at DATETIME(6) NOT NULL, t BIGINT NOT NULL DEFAULT 0)"
)


@contextmanager
def mariadb(args: argparse.Namespace) -> Iterator[str]:
    """The root URL of the server: given, or a fresh one."""
    if args.url:
        yield args.url
        return
    work = Path(tempfile.mkdtemp(prefix="changehub-mysqlbench-", dir=args.server_dir))
    os.chmod(work, 0o755)  # the mysql account must reach its data directory
    run = ROOT / "services" / "run"
    try:
        out = subprocess.run(
            [str(run), "up", "mariadb", "--dir", str(work)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        facts = dict(line.split("=", 1) for line in out.split() if "=" in line)
        yield facts["MYSQL_ROOT_URL"]
    finally:
        subprocess.run([str(run), "down", "mariadb", "--dir", str(work)], check=False,
                       capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


def settings(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "password": parts.password or "",
    }


def connect(url: str, db: str | None = None) -> Any:
    return pymysql.connect(**settings(url), database=db, autocommit=True, charset="utf8mb4")


def position(conn: Any) -> tuple[str, str, int]:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
        cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
        return str(cur.fetchone()[0]), str(file), int(pos)


def write_rows(conn: Any, rows: int, statements: int, first: int = 1) -> None:
    per = rows // statements
    with conn.cursor() as cur:
        for s in range(statements):
            lo = first + s * per
            values = ",".join(
                f"({i},'item {i}',{i % 1000},{(i % 10000) / 100:.2f},"
                f"'2024-01-01 00:00:00.{i % 1000000:06d}',0)"
                for i in range(lo, lo + per)
            )
            cur.execute(f"INSERT INTO items VALUES {values}")


def bench_changehub(url: str, gtid: str, rows: int, work: Path) -> dict[str, Any]:
    config = MySqlSourceConfig(
        name="bench", type="mariadb", url=url,
        databases=[DB], snapshot="never",
    )  # fmt: skip
    log = EmbeddedLog(work / "log")
    topic = f"bench.{DB}.items"

    known: set[str] = set()

    def ensure(t: str) -> int:
        # Created once, as the hub's source worker caches its topics' partition counts.
        if t not in known:
            log.create_topic(t, TopicConfig(partitions=1))
            known.add(t)
        return 1

    ensure(topic)
    context = ConnectorContext(
        name="bench", log=log, data_dir=work, logger=logging.getLogger("bench"),
        topic_partitions=ensure,
    )  # fmt: skip
    source = MySqlSource(config, context)
    checkpoint = {"v": 1, "gtid": gtid, "file": "", "pos": 4, "skip": 0}
    cpu = time.process_time()
    source.start(checkpoint)
    count = 0
    started = None
    try:
        while count < rows:
            batch = source.poll(5.0)
            if batch is None:
                raise RuntimeError(f"changehub stalled after {count} changes")
            if started is None:
                started = time.perf_counter()
            log.append_checkpointed("bench", route(batch.records, ensure), batch.checkpoint)
            source.committed(batch.checkpoint)
            count += len(batch.records)
        assert started is not None
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        source.stop()
        log.close()
    return {"changes": count, "seconds": round(elapsed, 3), "per_s": round(count / elapsed),
            "cpu_us_per_change": round(cpu / count * 1e6, 2)}


def bench_bare(url: str, gtid: str, rows: int) -> dict[str, Any]:
    stream = BinLogStreamReader(
        connection_settings=settings(url), server_id=9301, is_mariadb=True,
        auto_position=gtid, blocking=True, only_events=[WriteRowsEvent],
        only_schemas=[DB], enable_logging=False,
    )  # fmt: skip
    count = 0
    started = time.perf_counter()
    cpu = time.process_time()
    try:
        for event in stream:
            for row in event.rows:
                for _ in row["values"].values():
                    pass
                count += 1
            if count >= rows:
                break
    finally:
        stream.close()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return {"changes": count, "seconds": round(elapsed, 3), "per_s": round(count / elapsed),
            "cpu_us_per_change": round(cpu / count * 1e6, 2)}


def bench_mariadb_binlog(url: str, start: tuple[str, int], end: int, rows: int) -> dict[str, Any]:
    s = settings(url)
    started = time.perf_counter()
    subprocess.run(
        ["mariadb-binlog", "--read-from-remote-server", f"--host={s['host']}",
         f"--port={s['port']}", f"--user={s['user']}", f"--password={s['password']}",
         "--base64-output=DECODE-ROWS", "-v", f"--start-position={start[1]}",
         f"--stop-position={end}", start[0]],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    return {"changes": rows, "seconds": round(elapsed, 3), "per_s": round(rows / elapsed)}


def bench_latency(
    url: str, rate: int, seconds: float, work: Path, connections: int
) -> dict[str, Any]:
    config = MySqlSourceConfig(name="lat", type="mariadb", url=url, databases=[DB],
                               snapshot="never")  # fmt: skip
    log = EmbeddedLog(work / "latlog")

    known: set[str] = set()

    def ensure(t: str) -> int:
        # Created once, as the hub's source worker caches its topics' partition counts.
        if t not in known:
            log.create_topic(t, TopicConfig(partitions=1))
            known.add(t)
        return 1

    context = ConnectorContext(
        name="lat", log=log, data_dir=work, logger=logging.getLogger("lat"),
        topic_partitions=ensure,
    )  # fmt: skip
    source = MySqlSource(config, context)
    source.start(None)
    freeze_startup_objects()  # as `changehub run` does once its connectors started
    total = int(rate * seconds)
    # The writer runs in a process of its own (as an application would), not competing
    # for this process's interpreter lock with the source and the log.
    writer = subprocess.Popen(
        [sys.executable, __file__, "--write", url, str(rate), str(total), str(connections),
         str(CHANGEHUB_IDS)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    durable_at: list[tuple[int, list[bytes | None]]] = []
    appends: list[float] = []  # seconds per append_checkpointed (with its fsync)
    received = 0
    began = time.perf_counter()
    cpu = time.process_time()
    main_cpu = time.thread_time()
    reader_cpu = _thread_cpu(source)
    try:
        deadline = time.monotonic() + seconds + 30
        while received < total and time.monotonic() < deadline:
            batch = source.poll(1.0)
            if batch is None:
                continue
            started = time.perf_counter()
            log.append_checkpointed("lat", route(batch.records, ensure), batch.checkpoint)
            durable = time.time_ns() // 1000
            appends.append(time.perf_counter() - started)
            source.committed(batch.checkpoint)
            # Decoded after the run: measuring must not slow the loop it measures.
            durable_at.append((durable, [r.value for r in batch.records]))
            received += len(batch.records)
    finally:
        acked, _ = writer.communicate(timeout=seconds + 120)
        writer_seconds = time.perf_counter() - began
        cpu = time.process_time() - cpu
        main_cpu = time.thread_time() - main_cpu
        reader_cpu = _thread_cpu(source) - reader_cpu
        source.stop()
        log.close()
    ack = {int(i): int(at) for i, at in (line.split() for line in acked.splitlines())}
    latencies: list[float] = []  # from the commit's acknowledgement to durable in the log
    from_insert: list[float] = []  # from just before the INSERT (the server's commit too)
    for durable, values in durable_at:
        for raw in values:
            value = decode_value(raw)
            if value is not None:
                latencies.append((durable - ack[value["after"]["id"]]) / 1000)
                from_insert.append((durable - value["after"]["t"]) / 1000)
    latencies.sort()
    from_insert.sort()
    appends.sort()
    n = max(1, len(latencies))
    return {
        "rate_per_s": rate,
        "connections": connections,
        "switch_interval_ms": round(sys.getswitchinterval() * 1000, 3),
        "committed": len(ack),
        # Changes durable before the deadline (the run's length + 30 s): fewer than
        # committed when the source fell behind, and then the latencies miss the latest.
        "changes": len(latencies),
        "seconds": round(writer_seconds, 2),
        # One transaction per change here: what the source spends per transaction.
        "cpu_us_per_change": round(cpu / n * 1e6, 1),
        # ... of which the source's reader thread (binlog to records) and the appending
        # thread (poll, route, append with fsync, committed); the rest: the log's threads.
        "reader_cpu_us_per_change": round(reader_cpu / n * 1e6, 1),
        "appending_cpu_us_per_change": round(main_cpu / n * 1e6, 1),
        "batches": len(appends),
        "changes_per_batch": round(len(latencies) / max(1, len(appends)), 1),
        "append_p50_ms": pct([a * 1000 for a in appends], 0.50),
        "append_p99_ms": pct([a * 1000 for a in appends], 0.99),
        "p50_ms": pct(latencies, 0.50),
        "p99_ms": pct(latencies, 0.99),
        "max_ms": round(latencies[-1], 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "from_insert_p50_ms": pct(from_insert, 0.50),
        "from_insert_p99_ms": pct(from_insert, 0.99),
    }


def _thread_cpu(source: MySqlSource) -> float:
    """CPU seconds of the source's reader thread so far (0 before it runs)."""
    thread = getattr(source, "_thread", None)
    native = getattr(thread, "native_id", None)
    for t in psutil.Process().threads():
        if t.id == native:
            return float(t.user_time + t.system_time)
    return 0.0


class Debezium:
    """Debezium's MySQL connector (2.7, MariaDB adapter) in the embedded engine, in a child
    JVM (``bench/debezium/DebeziumMySqlProbe.java``), read from the binlog's first event
    (``snapshot.mode=never``) and followed through the probe's ``batch`` and ``id`` lines."""

    def __init__(self, url: str, work: Path, poll_ms: int) -> None:
        BUNDLE.install()  # resolve the jars and compile the probe, once per machine
        s = settings(url)
        work.mkdir(parents=True, exist_ok=True)
        engine = {
            "name": "debezium-bench",
            "connector.class": "io.debezium.connector.mysql.MySqlConnector",
            # Debezium 2.x reads MariaDB through its MariaDB adapter and JDBC driver; the
            # driver refuses the connector's default ssl mode ("preferred").
            "connector.adapter": "mariadb",
            "database.protocol": "jdbc:mariadb",
            "database.jdbc.driver": "org.mariadb.jdbc.Driver",
            "database.ssl.mode": "disabled",
            "database.hostname": str(s["host"]),
            "database.port": str(s["port"]),
            "database.user": str(s["user"]),
            "database.password": str(s["password"]),
            "database.server.id": "5401",
            "topic.prefix": "dbz",
            "database.include.list": DB,
            "table.include.list": f"{DB}.items",
            "include.schema.changes": "false",
            # From the binlog's first event, as changehub reads it from the GTID before the
            # rows: both catch up on the same, already written binlog.
            "snapshot.mode": "never",
            # The binlog starts with the server's set-up (MariaDB's CREATE OR REPLACE USER),
            # which Debezium's DDL parser rejects; it has nothing to do with the table.
            "schema.history.internal.skip.unparseable.ddl": "true",
            "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
            "schema.history.internal.file.filename": str(work / "history.dat"),
            "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
            "offset.storage.file.filename": str(work / "offsets.dat"),
            # changehub writes DECIMAL as a string, its envelope has no "schema" part.
            "decimal.handling.mode": "string",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            # How long the engine waits for a batch to fill.
            "poll.interval.ms": str(poll_ms),
        }
        (work / "engine.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in engine.items())
        )
        self.stderr = work / "debezium.log"
        self.changed = threading.Condition()
        self.count = 0
        self.batches: list[tuple[int, float, float]] = []  # (records so far, at s, JVM CPU s)
        self.arrived: dict[int, int] = {}  # id -> µs its batch arrived
        with self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [
                    str(jdk() / "bin" / "java"), "-Xmx512m",
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                    "-cp", BUNDLE.classpath(), "DebeziumMySqlProbe",
                    str(work / "engine.properties"), str(DEBEZIUM_IDS),
                ],
                stdout=subprocess.PIPE, stderr=err, text=True,
            )  # fmt: skip
        self._psutil = psutil.Process(self.process.pid)
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            word, *rest = line.split()
            if word == "id":
                self.arrived[int(rest[1])] = int(rest[0])
            elif word == "batch":
                with self.changed:
                    self.count = int(rest[0])
                    self.batches.append((self.count, int(rest[1]) / 1e6, self.cpu_seconds()))
                    self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def cpu_seconds(self) -> float:
        t = self._psutil.cpu_times()  # every thread of the JVM: engine, JIT, GC
        return float(t.user + t.system)

    def wait_count(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.count < n:
                if self.process.poll() is not None:
                    tail = self.stderr.read_text(errors="replace").splitlines()[-30:]
                    raise RuntimeError("Debezium exited:\n" + "\n".join(tail))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"Debezium stalled at {self.count} of {n} changes")
                self.changed.wait(min(remaining, 1.0))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def bench_debezium(
    url: str, rows: int, before: int, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    """Debezium on the same binlog: the ``rows`` bulk inserts (after ``before`` changes of
    the table, changehub's latency rows included), then the same paced writer as
    changehub's latency run, with ids from ``DEBEZIUM_IDS``."""
    launched = time.perf_counter()
    dbz = Debezium(url, work / "debezium", args.debezium_poll_ms)
    try:
        dbz.wait_count(rows, timeout=900)
        first = dbz.batches[0]
        last = next(b for b in dbz.batches if b[0] >= rows)
        # From the end of the first batch: the first batch's own reading is not timed.
        changes = last[0] - first[0]
        seconds = last[1] - first[1]
        throughput = {
            "changes": changes,
            "seconds": round(seconds, 3),
            "per_s": round(changes / seconds),
            "cpu_us_per_change": round((last[2] - first[2]) / changes * 1e6, 2),
            "launch_to_last_s": round(time.perf_counter() - launched, 1),
        }
        dbz.wait_count(rows + before, timeout=600)
        total = int(args.latency_rate * args.latency_seconds)
        cpu = dbz.cpu_seconds()
        out = subprocess.run(
            [sys.executable, __file__, "--write", url, str(args.latency_rate), str(total),
             str(args.latency_connections), str(DEBEZIUM_IDS)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        dbz.wait_count(rows + before + total, timeout=args.latency_seconds + 120)
        cpu = dbz.cpu_seconds() - cpu
    finally:
        dbz.stop()
    ack = {int(i): int(at) for i, at in (line.split() for line in out.splitlines())}
    latencies = sorted((dbz.arrived[i] - at) / 1000 for i, at in ack.items())
    return {
        "version": BUNDLE.name,
        "poll_interval_ms": args.debezium_poll_ms,
        "throughput": throughput,
        "latency": {
            "rate_per_s": args.latency_rate,
            "changes": len(latencies),
            "cpu_us_per_change": round(cpu / max(1, len(latencies)) * 1e6, 1),
            "p50_ms": pct(latencies, 0.50),
            "p99_ms": pct(latencies, 0.99),
            "max_ms": round(latencies[-1], 2),
        },
    }


def pct(values: list[float], p: float) -> float:
    return round(values[min(len(values) - 1, int(p * len(values)))], 2)


def write_at_rate(url: str, rate: int, total: int, connections: int, base: int) -> None:
    """The latency workload's writer (``--write``): single-row inserts at ``rate`` per second
    over ``connections`` connections (a server that syncs every commit reaches the rate only
    with group commit), each row carrying the time (µs) just before its INSERT. Prints
    ``id commit_acknowledged_us`` per row; ids start at ``base``."""
    acks: list[tuple[int, int]] = []

    def run(k: int) -> None:
        conn = connect(url, DB)
        interval = connections / rate
        next_at = time.perf_counter()
        with conn.cursor() as cur:
            for i in range(k, total, connections):
                cur.execute(
                    "INSERT INTO items VALUES (%s, 'l', 1, 1.00, '2024-01-01', %s)",
                    (base + i, time.time_ns() // 1000),
                )
                acks.append((base + i, time.time_ns() // 1000))
                next_at += interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)  # pacing the writer, not synchronisation
        conn.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.stdout.write("".join(f"{i} {at}\n" for i, at in acks))


def main() -> None:
    if sys.argv[1:2] == ["--write"]:
        write_at_rate(
            sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        )
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="root URL of a running server (default: start one)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--statements", type=int, default=10)
    parser.add_argument("--latency-rate", type=int, default=2000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--latency-connections", type=int, default=8)
    parser.add_argument("--no-debezium", action="store_true", help="leave the Debezium peer out")
    parser.add_argument(
        "--server-dir",
        help="where the started MariaDB keeps its data (default: the temp dir, the log's disk); "
        "/dev/shm keeps its fsyncs off the log's disk, as a database on its own machine would",
    )
    parser.add_argument("--switch-interval-ms", type=float,
                        help="sys.setswitchinterval for this process (CPython's default: 5 ms)")
    parser.add_argument("--debezium-poll-ms", type=int, default=10,
                        help="Debezium's poll.interval.ms (its default is 500)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    work = Path(tempfile.mkdtemp(prefix="changehub-mysqlbench-log-"))
    try:
        with mariadb(args) as url:
            conn = connect(url)
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {DB}")
                cur.execute(f"CREATE DATABASE {DB}")
                cur.execute(f"USE {DB}")
                cur.execute(TABLE_DDL)
            gtid, file, pos = position(conn)
            write_rows(conn, args.rows, args.statements)
            _, _, end = position(conn)
            results = {
                "changehub": bench_changehub(url, gtid, args.rows, work),
                "bare_mysql_replication": bench_bare(url, gtid, args.rows),
                "mariadb_binlog": bench_mariadb_binlog(url, (file, pos), end, args.rows),
                "latency": bench_latency(
                    url, args.latency_rate, args.latency_seconds, work, args.latency_connections
                ),
            }
            if not args.no_debezium:
                with conn.cursor() as cur:
                    cur.execute(f"SELECT COUNT(*) FROM {DB}.items")
                    before = int(cur.fetchone()[0]) - args.rows
                results["debezium"] = bench_debezium(url, args.rows, before, args, work)
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                version = str(cur.fetchone()[0])
            conn.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = results["changehub"]["per_s"] / results["bare_mysql_replication"]["per_s"]
    cpu_ratio = (results["bare_mysql_replication"]["cpu_us_per_change"]
                 / results["changehub"]["cpu_us_per_change"])  # fmt: skip
    out = {
        "workload": f"{args.rows} single-row inserts in {args.statements} multi-row statements",
        "server": version,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(),
        },
        **results,
        "changehub_vs_bare": round(ratio, 2),
        "changehub_vs_bare_cpu": round(cpu_ratio, 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    lat = results["latency"]
    print("| measure | changes/s |\n|---|---|")
    for name in ("changehub", "bare_mysql_replication", "mariadb_binlog"):
        print(f"| {name} | {results[name]['per_s']:,} |")
    print(f"changehub / bare loop: {ratio:.2f}x (CPU per change: {cpu_ratio:.2f}x; changehub "
          f"{results['changehub']['cpu_us_per_change']} us, bare "
          f"{results['bare_mysql_replication']['cpu_us_per_change']} us)")
    print(f"latency at {lat['rate_per_s']}/s ({lat['changes']} of {lat['committed']} committed "
          f"changes durable in {lat['seconds']} s): "
          f"commit acknowledged -> durable p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
          f"max {lat['max_ms']} ms; from before the INSERT p50 {lat['from_insert_p50_ms']} ms, "
          f"p99 {lat['from_insert_p99_ms']} ms; "
          f"{lat['cpu_us_per_change']} us CPU per change (reader thread "
          f"{lat['reader_cpu_us_per_change']} us, appending thread "
          f"{lat['appending_cpu_us_per_change']} us); {lat['batches']} appends of "
          f"{lat['changes_per_batch']} changes on average, p50 {lat['append_p50_ms']} ms, "
          f"p99 {lat['append_p99_ms']} ms each; switch interval {lat['switch_interval_ms']} ms")
    if "debezium" in results:
        dbz = results["debezium"]
        dt, dl = dbz["throughput"], dbz["latency"]
        ch = results["changehub"]
        print(f"Debezium ({dbz['version']}, poll.interval.ms={dbz['poll_interval_ms']}): "
              f"{dt['per_s']:,} changes/s, {dt['cpu_us_per_change']} us CPU per change "
              f"(changehub / Debezium: {ch['per_s'] / dt['per_s']:.2f}x changes/s, "
              f"{dt['cpu_us_per_change'] / ch['cpu_us_per_change']:.2f}x less CPU); latency at "
              f"{dl['rate_per_s']}/s: commit acknowledged -> handed to the engine's consumer "
              f"p50 {dl['p50_ms']} ms, p99 {dl['p99_ms']} ms, max {dl['max_ms']} ms; "
              f"{dl['cpu_us_per_change']} us CPU per change")  # fmt: skip
    goal = "met" if lat["p99_ms"] < 10 else "NOT met"
    print(f"goals: changehub / bare loop {ratio:.2f}x (goal >= 1.5x: "
          f"{'met' if ratio >= 1.5 else 'NOT met'}); latency p99 {lat['p99_ms']} ms "
          f"(goal < 10 ms: {goal})")
    print(f"written to {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
