"""Benchmark of changehub's Postgres source → Kafka beside Debezium's → the same Kafka.

The peer is Debezium 3.6.1's embedded engine with its Postgres connector (pgoutput), run by
``bench/debezium/DebeziumToKafka.java``, which hands every batch to a Kafka producer and
waits for the acknowledgements before marking it processed — what Debezium Server's Kafka
sink does. Its jars are resolved from ``bench/debezium/pom.xml`` and the class compiled on the
first run, into ``~/.cache/changehub/services/bench-debezium-<version>`` (not committed).

Both run on this machine against one PostgreSQL 15 (``services/run up postgres``) and one
Kafka broker (``services/run up kafka``), in the same run, with the same producer settings
(``acks=all``, idempotence, ``linger.ms=1``, no compression) and the same envelope (JSON
without schemas, NUMERIC as a string):

Each reader (changehub: ``PostgresSource`` appending into ``log.kafka.KafkaLog`` with its
transactional checkpoints, in a thread of this process, as the hub's source worker does;
Debezium: the JVM above) starts on a fresh database with a slot of its own, and is warmed
up with ``--warm-up`` changes before anything is measured. The readers run one after the
other, never at once.

* **throughput**: ``--rows`` single-row inserts in one statement, then as many single-row
  updates in one statement; the clock runs from the statement's commit to the last of its
  changes acknowledged by Kafka, and the reader's CPU time (its process) is taken over
  the same interval.
* **latency**: pgbench commits ``--latency-rate`` single-row inserts per second for
  ``--latency-seconds``; a ``read_committed`` consumer in a separate process notes when each
  change arrives from the topic; latency = arrival minus the commit time Postgres put in the
  event (``source.ts_ms``, milliseconds: both systems carry the same field). Debezium is run
  twice: with its defaults (``poll.interval.ms=500``) and tuned for latency
  (``--debezium-poll-ms``, default 10).

Prints a table and writes ``bench/results/debezium.json``::

    .venv/bin/python bench/debezium_bench.py                   # the recorded run
    .venv/bin/python bench/debezium_bench.py --rows 20000 --warm-up 20000 --latency-seconds 8
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
import psycopg
from kafka_bench import start_kafka
from pg_bench import fresh_database, percentiles, postgres

from connectors.api import ConnectorContext
from connectors.source.postgres.source import PostgresSource, PostgresSourceConfig
from hub.source_worker import route
from log.api import Record, TopicConfig, TopicPartition
from log.kafka import KafkaLog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # services/ (the servers' scripts) is not an installed package
from services.java import Bundle, jdk  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "debezium.json"
HERE = ROOT / "bench" / "debezium"
BUNDLE = Bundle(
    "bench-debezium-3.6.1.Final", HERE / "pom.xml", launcher=HERE / "DebeziumToKafka.java"
)
# changehub's topics are <source name>.public.items, Debezium's <topic.prefix>.public.items:
# each run writes to a topic of its own.
TABLE_DDL = (
    "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int NOT NULL, "
    "price numeric(10,2) NOT NULL, updated_at timestamptz NOT NULL)"
)
FILL = (
    "INSERT INTO items SELECT g, 'item ' || g, g % 1000, (g % 10000) / 100.0, "
    "'2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, {rows}) g"
)
UPDATE = "UPDATE items SET qty = qty + 1, updated_at = now() WHERE id > 0"
#: Changes each reader gets before anything is measured (see launch()), unless --warm-up.
WARM_UP = 100_000
# changehub's producer settings (log/kafka/producer.py), given to Debezium's producer too.
PRODUCER = {
    "acks": "all",
    "enable.idempotence": "true",
    "linger.ms": "1",
    "compression.type": "none",
}


# -- the two readers ---------------------------------------------------------------------------


class Reader(ABC):
    """What both readers share: a count of changes acknowledged by Kafka, the time of the
    last acknowledgement, a wait on them, and the CPU time the reader has used."""

    def __init__(self) -> None:
        self.acked = 0
        self.last_ack = 0.0
        self.streaming_after_s = 0.0  # launch until a walsender streams to it
        self.changed = threading.Condition()
        self.error: BaseException | None = None

    def wait(self, what: str, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not done():
                self.check(what)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self}: no {what} within {timeout:.0f} s")
                self.changed.wait(min(left, 1.0))

    def acked_at_least(self, n: int, timeout: float = 600) -> None:
        self.wait(f"{n} changes acknowledged", lambda: self.acked >= n, timeout)

    def check(self, what: str) -> None:
        if self.error is not None:
            raise RuntimeError(f"{self} failed before {what}") from self.error

    @abstractmethod
    def cpu_seconds(self) -> float:
        """CPU time used so far by everything the reader runs on."""

    @abstractmethod
    def stop(self) -> None: ...


class Changehub(Reader):
    """A PostgresSource appending into a KafkaLog in a thread of this process, the way the
    hub's source worker does (batch → route → append_checkpointed → committed)."""

    def __init__(self, name: str, dsn: str, log: KafkaLog, work: Path, slot: str) -> None:
        super().__init__()
        self.log = log
        self.name = name
        config = PostgresSourceConfig(
            name=name,
            type="postgres",
            dsn=dsn,
            tables=["public.items"],
            snapshot="never",
            slot_name=slot,
            publication="bench",
        )
        work.mkdir(parents=True, exist_ok=True)
        context = ConnectorContext(
            name=name,
            log=log,
            data_dir=work,
            logger=logging.getLogger("bench"),
            topic_partitions=self._topic,
        )
        self.source = PostgresSource(config, context)
        # (changes, seconds) of each append_checkpointed: where commit-to-topic time goes.
        self.appends: list[tuple[int, float]] = []
        self.source.start(None)  # no checkpoint: stream from the slot's position
        for topic in self.source.topics():
            self._topic(topic)
        self._running = True
        self._thread = threading.Thread(target=self._run, name=f"source {name}", daemon=True)
        self._thread.start()

    def __str__(self) -> str:
        return "changehub"

    def _topic(self, topic: str) -> int:
        self.log.create_topic(topic, TopicConfig(partitions=1, retention_ms=None))
        return 1

    def _run(self) -> None:
        try:
            while self._running:
                batch = self.source.poll(0.2)
                if batch is None:
                    continue
                started = time.perf_counter()
                self.log.append_checkpointed(
                    self.name, route(batch.records, self._topic), batch.checkpoint
                )
                self.appends.append((len(batch.records), time.perf_counter() - started))
                self.source.committed(batch.checkpoint)
                with self.changed:
                    self.acked += len(batch.records)
                    self.last_ack = time.time()
                    self.changed.notify_all()
        except BaseException as e:  # handed to the thread that waits, which raises it
            with self.changed:
                self.error = e
                self.changed.notify_all()

    def cpu_seconds(self) -> float:
        # The whole process: the source's reader thread, this thread, librdkafka's threads;
        # the latency consumer runs in a process of its own.
        return time.process_time()

    def stop(self) -> None:
        self._running = False
        self._thread.join(30)
        self.source.stop()


class Debezium(Reader):
    """DebeziumToKafka in a child JVM, following its ``started`` / ``acked`` lines."""

    def __init__(
        self, work: Path, bootstrap: str, dsn: str, slot: str, prefix: str, poll_ms: int
    ) -> None:
        super().__init__()
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        params = psycopg.conninfo.conninfo_to_dict(dsn)
        engine = {
            "name": "debezium-bench",
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
            "offset.storage.file.filename": str(work / "offsets.dat"),
            "database.hostname": str(params.get("host", "127.0.0.1")),
            "database.port": str(params.get("port", 5432)),
            "database.user": str(params["user"]),
            "database.password": str(params.get("password", "")),
            "database.dbname": str(params["dbname"]),
            "topic.prefix": prefix,
            "table.include.list": "public.items",
            "plugin.name": "pgoutput",
            "slot.name": slot,
            "publication.name": "bench",
            "publication.autocreate.mode": "disabled",
            "snapshot.mode": "no_data",
            # changehub writes NUMERIC as a string; Debezium's default is base64 bytes.
            "decimal.handling.mode": "string",
            # changehub's envelope has no "schema" part.
            "converter.schemas.enable": "false",
            # How long the engine waits for a batch to fill, and how long the Postgres
            # connector sleeps when the replication stream has nothing pending.
            "poll.interval.ms": str(poll_ms),
        }
        producer = {"bootstrap.servers": bootstrap, **PRODUCER}
        write_properties(work / "engine.properties", engine)
        write_properties(work / "producer.properties", producer)
        self.stderr = work / "debezium.log"
        self.started: float | None = None
        with self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [
                    str(jdk() / "bin" / "java"), "-Xmx512m",
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                    "-cp", BUNDLE.classpath(), "DebeziumToKafka",
                    str(work / "engine.properties"), str(work / "producer.properties"),
                ],
                stdout=subprocess.PIPE, stderr=err, text=True,
            )  # fmt: skip
        self._psutil = psutil.Process(self.process.pid)
        self._reader = threading.Thread(target=self._follow, daemon=True)
        self._reader.start()

    def __str__(self) -> str:
        return "Debezium"

    def _follow(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            word, *rest = line.split()
            with self.changed:
                if word == "started":
                    self.started = int(rest[0]) / 1e6
                elif word == "acked":
                    self.acked, self.last_ack = int(rest[0]), int(rest[1]) / 1e6
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def check(self, what: str) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"Debezium exited before {what}:\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(self.stderr.read_text(errors="replace").splitlines()[-30:])

    def cpu_seconds(self) -> float:
        t = self._psutil.cpu_times()  # every thread of the JVM: engine, JIT, GC, producer
        return float(t.user + t.system)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_properties(path: Path, values: dict[str, str]) -> None:
    # java.util.Properties reads backslashes as escapes; none of our values has one.
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")


def wait_slot(dsn: str, slot: str) -> None:
    """Wait until a walsender streams from ``slot``: the reader is past its start-up."""
    deadline = time.monotonic() + 120
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if row is not None and row[0]:
                return
            time.sleep(0.05)
    raise TimeoutError(f"no reader streams from slot {slot} within 120 s")


def prepare_database(facts: dict[str, str], name: str, slot: str) -> str:
    """A fresh database with the table, its publication and the reader's slot."""
    dsn = fresh_database(facts, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLE_DDL)
        conn.execute("CREATE SEQUENCE ids START 1000000001")  # the paced writer's ids
        conn.execute("CREATE PUBLICATION bench FOR TABLE items")
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    return dsn


@dataclass(frozen=True)
class Bench:
    """What every measurement runs against."""

    facts: dict[str, str]  # the Postgres server's (services/run up postgres)
    log: KafkaLog
    bootstrap: str
    work: Path
    warm_up: int


def launch(b: Bench, system: str, label: str, poll_ms: int = 500) -> tuple[Reader, str]:
    """A fresh database and ``system`` streaming from it, warmed up: ``b.warm_up`` changes
    (ids below 0) written and acknowledged, so that the JVM has compiled its hot paths and
    every client is connected before anything is measured (with 20,000 Debezium still
    spent 336 µs of CPU per change in the measured run, with 100,000 140 µs: a service that
    runs for days is warm). Its topic is ``<label>.public.items``."""
    slot = f"slot_{label}"
    dsn = prepare_database(b.facts, f"bench_{label}", slot)
    started = time.time()
    reader: Reader
    if system == "changehub":
        reader = Changehub(label, dsn, b.log, b.work / label, slot)
    else:
        b.log.create_topic(f"{label}.public.items", TopicConfig(partitions=1, retention_ms=None))
        reader = Debezium(b.work / label, b.bootstrap, dsn, slot, label, poll_ms)
    wait_slot(dsn, slot)
    reader.streaming_after_s = round(time.time() - started, 2)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO items SELECT -g, 'warm ' || g, 1, 1.0, now() "
            "FROM generate_series(1, %s) g",
            (b.warm_up,),
        )
    reader.acked_at_least(b.warm_up)
    return reader, dsn


# -- throughput ------------------------------------------------------------------------------


def bench_throughput(b: Bench, system: str, rows: int) -> dict[str, Any]:
    """Each phase is one statement; the clock runs from its commit to the last of its
    changes acknowledged by Kafka (Postgres decodes a transaction at its commit)."""
    reader, dsn = launch(b, system, f"{system}_stream")
    result: dict[str, Any] = {"streaming_after_s": reader.streaming_after_s}
    try:
        done = b.warm_up
        with psycopg.connect(dsn, autocommit=True) as conn:
            for phase, sql in (("insert", FILL.format(rows=rows)), ("update", UPDATE)):
                cpu = reader.cpu_seconds()
                conn.execute(sql)
                committed = time.time()
                done += rows
                reader.acked_at_least(done)
                seconds = reader.last_ack - committed
                result[phase] = {
                    "seconds": round(seconds, 2),
                    "changes_per_s": round(rows / seconds),
                    # CPU of the reader per change: what it costs, whatever else runs.
                    "cpu_us_per_change": round((reader.cpu_seconds() - cpu) / rows * 1e6, 1),
                }
    finally:
        reader.stop()
    return result


# -- latency ---------------------------------------------------------------------------------


class Consumer:
    """A consumer in its own process (so that it takes no CPU from the process measured)
    noting each change's arrival time minus its commit time."""

    def __init__(self, bootstrap: str, tp: TopicPartition, offset: int, work: Path) -> None:
        self.out = work / f"{tp.topic}.latencies.json"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "consume", "--bootstrap", bootstrap, "--topic", tp.topic,
             "--offset", str(offset), "--out", str(self.out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "assigned":  # positioned at ``offset``
            raise RuntimeError("the latency consumer did not start")

    def finish(self, expected: int) -> list[float]:
        """Tell it how many changes to expect; it reads until it has them (or 30 s pass)."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{expected}\n")
        self.process.stdin.close()
        self.process.wait(60)
        latencies: list[float] = orjson.loads(self.out.read_bytes())
        return latencies


def consume(bootstrap: str, topic: str, offset: int, out: Path) -> None:
    from confluent_kafka import Consumer as KafkaConsumer
    from confluent_kafka import TopicPartition as KafkaTopicPartition

    c = KafkaConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"latency-{os.getpid()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    c.assign([KafkaTopicPartition(topic, 0, offset)])
    print("assigned", flush=True)
    expected: list[int] = []
    threading.Thread(
        target=lambda: expected.append(int(sys.stdin.read() or 0)), daemon=True
    ).start()
    latencies: list[float] = []
    deadline = float("inf")
    while len(latencies) < (expected[0] if expected else sys.maxsize):
        if expected and deadline == float("inf"):
            deadline = time.monotonic() + 30
        if time.monotonic() > deadline:
            break
        for m in c.consume(1000, 0.05):
            now = time.time() * 1000
            value = m.value()
            if m.error() is None and value is not None:
                latencies.append(now - orjson.loads(value)["source"]["ts_ms"])
    c.close()
    out.write_bytes(orjson.dumps(latencies))


def pgbench(facts: dict[str, str], dsn: str, work: Path, rate: int, seconds: float) -> None:
    script = work / "insert.sql"
    script.write_text(
        "INSERT INTO items VALUES (nextval('ids'), 'x', 1, 1.0, now());\n", encoding="utf-8"
    )
    binary = Path(facts.get("PG_BIN") or "/usr/lib/postgresql/15/bin") / "pgbench"
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    env = dict(os.environ, PGPASSWORD=str(params.get("password", "")))
    subprocess.run(
        [
            str(binary), "-n", "-c", "8", "-j", "2", "-R", str(rate), "-T", str(int(seconds)),
            "-f", str(script), psycopg.conninfo.make_conninfo(dsn, password=None),
        ],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def committed_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])  # type: ignore[index]


def bench_latency(
    b: Bench, system: str, rate: int, seconds: float, poll_ms: int = 500
) -> dict[str, Any]:
    label = f"{system}_latency" + ("" if system == "changehub" else f"_{poll_ms}")
    reader, dsn = launch(b, system, label, poll_ms)
    try:
        tp = TopicPartition(f"{label}.public.items", 0)
        consumer = Consumer(b.bootstrap, tp, b.log.end_offset(tp), b.work)  # after the warm-up
        cpu = reader.cpu_seconds()
        pgbench(b.facts, dsn, b.work, rate, seconds)
        expected = committed_rows(dsn)
        reader.acked_at_least(expected)
        cpu = reader.cpu_seconds() - cpu
    finally:
        reader.stop()
    paced = expected - b.warm_up
    result = {
        "events": paced,
        "rate_achieved_per_s": round(paced / seconds),
        "commit_to_topic": percentiles(consumer.finish(paced)),
        "cpu_us_per_change": round(cpu / paced * 1e6, 1),
    }
    if isinstance(reader, Changehub):
        # The batches of the paced part (the warm-up's come first).
        paced_appends, n = [], 0
        for changes, took in reversed(reader.appends):
            if n >= paced:
                break
            paced_appends.append((changes, took))
            n += changes
        result["batches"] = len(paced_appends)
        result["changes_per_batch"] = round(paced / max(1, len(paced_appends)), 1)
        result["append_checkpointed"] = percentiles([took * 1000 for _, took in paced_appends])
    return result


def warm_up(log: KafkaLog) -> None:
    """One checkpointed append before any measurement: on a fresh broker the first
    transaction waits seconds for Kafka to create its transaction-state topic."""
    tp = TopicPartition("warm-up", 0)
    log.create_topic(tp.topic, TopicConfig(partitions=1, retention_ms=None))
    log.append_checkpointed("warm-up", {tp: [Record(b"k", b"v")]}, {"n": 0})


# -- report ----------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "consume":
        sub = argparse.ArgumentParser()
        sub.add_argument("--bootstrap", required=True)
        sub.add_argument("--topic", required=True)
        sub.add_argument("--offset", type=int, required=True)
        sub.add_argument("--out", type=Path, required=True)
        a = sub.parse_args(sys.argv[2:])
        consume(a.bootstrap, a.topic, a.offset, a.out)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--latency-rate", type=int, default=2000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--debezium-poll-ms", type=int, default=10)
    parser.add_argument("--warm-up", type=int, default=WARM_UP, help="changes before measuring")
    parser.add_argument("--only", choices=["throughput", "latency"])
    parser.add_argument("--systems", default="changehub,debezium", help="which readers to run")
    parser.add_argument("--bootstrap", help="an existing Kafka (default: start one)")
    parser.add_argument("--dsn")
    parser.add_argument("--superuser-dsn")
    parser.add_argument("--pg-bin", default="/usr/lib/postgresql/15/bin")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    BUNDLE.install()  # resolve the jars and compile the launcher, once per machine
    work = Path(tempfile.mkdtemp(prefix="changehub-dbzbench-"))
    os.chmod(work, 0o755)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "debezium": "3.6.1.Final embedded engine, Postgres connector (pgoutput)",
        "kafka": "one broker on loopback (services/run up kafka)",
        "warm_up_changes": args.warm_up,
    }
    bootstrap = args.bootstrap or start_kafka(work / "kafka")
    try:
        log = KafkaLog(bootstrap)
        try:
            warm_up(log)
            with postgres(args) as facts:
                with psycopg.connect(facts["PG_DSN"]) as conn:
                    results["machine"]["postgres"] = conn.info.server_version
                b = Bench(facts, log, bootstrap, work, args.warm_up)
                if args.only in (None, "throughput"):
                    t: dict[str, Any] = {"rows": args.rows}
                    for system in args.systems.split(","):
                        t[system] = bench_throughput(b, system, args.rows)
                        print(system, "throughput:", json.dumps(t[system]), flush=True)
                    t["ratio"] = (
                        {}
                        if len(t) < 3
                        else {
                            phase: round(
                                t["changehub"][phase]["changes_per_s"]
                                / t["debezium"][phase]["changes_per_s"],
                                2,
                            )
                            for phase in ("insert", "update")
                        }
                    )
                    results["throughput"] = t
                if args.only in (None, "latency"):
                    rate, seconds = args.latency_rate, args.latency_seconds
                    lat: dict[str, Any] = {"rate_target_per_s": rate, "seconds": seconds}
                    systems = args.systems.split(",")
                    if "changehub" in systems:
                        lat["changehub"] = bench_latency(b, "changehub", rate, seconds)
                        print("changehub latency:", json.dumps(lat["changehub"]), flush=True)
                    for poll in (500, args.debezium_poll_ms) if "debezium" in systems else ():
                        key = f"debezium_poll_{poll}ms"
                        lat[key] = bench_latency(b, "debezium", rate, seconds, poll)
                        lat[key]["poll_interval_ms"] = poll
                        print(key, "latency:", json.dumps(lat[key]), flush=True)
                    results["latency"] = lat
        finally:
            log.close()
    finally:
        if args.bootstrap is None:
            subprocess.run(
                [str(ROOT / "services" / "run"), "down", "kafka", "--dir", str(work / "kafka")],
                check=False,
                capture_output=True,
            )
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {RESULTS.relative_to(ROOT)}")


def table(results: dict[str, Any]) -> str:
    """The Markdown table bench/README.md records."""
    lines = [
        "| measure | changehub | Debezium | changehub / Debezium |",
        "|---|---|---|---|",
    ]
    t = results.get("throughput")
    if t and t["ratio"]:
        ours, theirs = t["changehub"], t["debezium"]
        for phase in ("insert", "update"):
            lines.append(
                f"| {t['rows']:,} {phase}s, changes/s | {ours[phase]['changes_per_s']:,} | "
                f"{theirs[phase]['changes_per_s']:,} | {t['ratio'][phase]:.2f} |"
            )
            lines.append(
                f"| … CPU µs per change ({phase}s) | {ours[phase]['cpu_us_per_change']} | "
                f"{theirs[phase]['cpu_us_per_change']} | "
                f"{ours[phase]['cpu_us_per_change'] / theirs[phase]['cpu_us_per_change']:.2f} |"
            )
        lines.append(
            f"| launch to streaming, s | {ours['streaming_after_s']} | "
            f"{theirs['streaming_after_s']} | |"
        )
    lat = results.get("latency")
    if lat and "changehub" in lat:
        ours = lat["changehub"]
        o = ours["commit_to_topic"]
        for key, value in lat.items():
            if not key.startswith("debezium_"):
                continue
            d = value["commit_to_topic"]
            lines.append(
                f"| commit-to-topic p50 / p99 ms at {lat['rate_target_per_s']:,}/s "
                f"(Debezium poll.interval.ms={value['poll_interval_ms']}) | "
                f"{o['p50_ms']} / {o['p99_ms']} | {d['p50_ms']} / {d['p99_ms']} | "
                f"{o['p50_ms'] / d['p50_ms']:.2f} / {o['p99_ms'] / d['p99_ms']:.2f} |"
            )
            lines.append(
                f"| … CPU µs per change (poll.interval.ms={value['poll_interval_ms']}) | "
                f"{ours['cpu_us_per_change']} | {value['cpu_us_per_change']} | "
                f"{ours['cpu_us_per_change'] / value['cpu_us_per_change']:.2f} |"
            )
        if "append_checkpointed" in ours:
            a = ours["append_checkpointed"]
            lines.append(
                f"| … changehub at that rate: changes per transaction; append_checkpointed "
                f"p50 / p99 ms | {ours['changes_per_batch']}; {a['p50_ms']} / {a['p99_ms']} "
                "| | |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
