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

* **throughput**: ``--rows`` single-row inserts, then as many single-row updates, written
  (each phase one statement, as ``bench/pg_bench.py`` does) before either reader starts; then
  changehub (``PostgresSource`` appending into ``log.kafka.KafkaLog`` with its transactional
  checkpoints, as the hub's source worker does) and Debezium each drain their own slot of the
  same WAL into their own topic. changes/s counts from the moment the reader is streaming
  (changehub: ``start()`` returned; Debezium: its task started) to the last change
  acknowledged by Kafka; the time from launch (Debezium's includes the JVM's start) is kept
  beside it.
* **latency**: pgbench commits ``--latency-rate`` single-row inserts per second for
  ``--latency-seconds``; a ``read_committed`` consumer in a separate process notes when each
  change arrives from the topic; latency = arrival minus the commit time Postgres put in the
  event (``source.ts_ms``, milliseconds: both systems carry the same field). Debezium is run
  twice: with its defaults (``poll.interval.ms=500``) and tuned for latency
  (``--debezium-poll-ms``, default 10).

Prints a table and writes ``bench/results/debezium.json``::

    .venv/bin/python bench/debezium_bench.py                   # the recorded run
    .venv/bin/python bench/debezium_bench.py --rows 20000 --latency-seconds 10   # quicker
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
from pathlib import Path
from typing import Any

import orjson
import psycopg
from kafka_bench import start_kafka
from pg_bench import current_lsn, fresh_database, lsn_text, percentiles, postgres

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
UPDATE = "UPDATE items SET qty = qty + 1, updated_at = now()"
# changehub's producer settings (log/kafka/producer.py), given to Debezium's producer too.
PRODUCER = {
    "acks": "all",
    "enable.idempotence": "true",
    "linger.ms": "1",
    "compression.type": "none",
}


# -- changehub: the Postgres source into the Kafka log -------------------------------------------


class Runner:
    """A PostgresSource appending into a KafkaLog, the way the hub's source worker does."""

    def __init__(self, name: str, dsn: str, log: KafkaLog, work: Path, slot: str) -> None:
        self.log = log
        self.name = name
        self.config = PostgresSourceConfig(
            name=name,
            type="postgres",
            dsn=dsn,
            tables=["public.items"],
            snapshot="never",
            slot_name=slot,
            publication="bench",
        )
        self.source = PostgresSource(
            self.config,
            ConnectorContext(
                name=name,
                log=log,
                data_dir=work,
                logger=logging.getLogger("bench"),
                topic_partitions=self._topic,
            ),
        )
        self.records = 0
        self.first_append: float | None = None
        self.last_append = 0.0

    def _topic(self, topic: str) -> int:
        self.log.create_topic(topic, TopicConfig(partitions=1, retention_ms=None))
        return 1

    def start(self) -> None:
        self.source.start(None)  # no checkpoint: stream from the slot's position
        for topic in self.source.topics():
            self._topic(topic)

    def run(self, until: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            batch = self.source.poll(0.2)
            if batch is None:
                continue
            self.log.append_checkpointed(
                self.name, route(batch.records, self._topic), batch.checkpoint
            )
            self.source.committed(batch.checkpoint)
            self.records += len(batch.records)
            self.last_append = time.time()
            if self.first_append is None:
                self.first_append = self.last_append

    def close(self) -> None:
        self.source.stop()


# -- Debezium: the embedded engine in a JVM ----------------------------------------------------


class Debezium:
    """DebeziumToKafka in a child JVM, following its ``started`` / ``acked`` lines."""

    def __init__(
        self, work: Path, bootstrap: str, dsn: str, slot: str, prefix: str, poll_ms: int
    ) -> None:
        work.mkdir(parents=True, exist_ok=True)
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
            "poll.interval.ms": str(poll_ms),
        }
        producer = {"bootstrap.servers": bootstrap, **PRODUCER}
        write_properties(work / "engine.properties", engine)
        write_properties(work / "producer.properties", producer)
        self.stderr = work / "debezium.log"
        self.launched = time.time()
        self.started: float | None = None
        self.acked = 0
        self.last_ack = 0.0
        self._changed = threading.Condition()
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
        self._reader = threading.Thread(target=self._follow, daemon=True)
        self._reader.start()

    def _follow(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            word, *rest = line.split()
            with self._changed:
                if word == "started":
                    self.started = int(rest[0]) / 1e6
                elif word == "acked":
                    self.acked, self.last_ack = int(rest[0]), int(rest[1]) / 1e6
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait(self, what: str, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                if self.process.poll() is not None:
                    raise RuntimeError(f"Debezium exited before {what}:\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"Debezium: no {what} in {timeout:.0f} s:\n{self.tail()}")
                self._changed.wait(min(left, 1.0))

    def tail(self) -> str:
        return "\n".join(self.stderr.read_text(errors="replace").splitlines()[-30:])

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


# -- throughput ------------------------------------------------------------------------------


def bench_throughput(
    facts: dict[str, str], log: KafkaLog, bootstrap: str, work: Path, rows: int
) -> dict[str, Any]:
    dsn = fresh_database(facts, "bench_dbz_stream")
    results: dict[str, Any] = {"rows": rows}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLE_DDL)
        conn.execute("CREATE PUBLICATION bench FOR TABLE items")
        for slot in ("changehub_bench", "debezium_bench"):
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        for phase, sql in (("insert", FILL.format(rows=rows)), ("update", UPDATE)):
            conn.execute(sql)
            end = current_lsn(conn)
            ours = run_changehub(dsn, log, work / f"ch-{phase}", rows, f"ch_{phase}")
            theirs = run_debezium(dsn, log, bootstrap, work / f"dbz-{phase}", rows, f"dbz_{phase}")
            # Each phase starts both readers afresh at the next phase's first change.
            for slot in ("changehub_bench", "debezium_bench"):
                wait_slot(conn, slot, active=False)
                conn.execute(
                    "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (slot, lsn_text(end))
                )
            results[phase] = {
                "changehub": ours,
                "debezium": theirs,
                "ratio": round(ours["changes_per_s"] / theirs["changes_per_s"], 2),
            }
    return results


def wait_slot(conn: psycopg.Connection[Any], slot: str, *, active: bool) -> None:
    """Wait until a walsender holds ``slot`` (or none does: a closed reader's walsender
    lets go of it a moment after the connection ends)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
        if row is not None and row[0] == active:
            return
        time.sleep(0.05)
    raise TimeoutError(f"slot {slot} not {'active' if active else 'released'} within 60 s")


def run_changehub(dsn: str, log: KafkaLog, work: Path, rows: int, name: str) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    launched = time.time()
    runner = Runner(name, dsn, log, work, "changehub_bench")
    try:
        runner.start()
        streaming = time.time()
        runner.run(lambda: runner.records >= rows, timeout=1800)
    finally:
        runner.close()
    if runner.records < rows:
        raise TimeoutError(f"changehub appended {runner.records} of {rows} changes")
    return summary(rows, launched, streaming, runner.last_append)


def run_debezium(
    dsn: str, log: KafkaLog, bootstrap: str, work: Path, rows: int, prefix: str
) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    log.create_topic(f"{prefix}.public.items", TopicConfig(partitions=1, retention_ms=None))
    dbz = Debezium(work, bootstrap, dsn, "debezium_bench", prefix, 500)
    try:
        dbz.wait("task start", lambda: dbz.started is not None, 300)
        dbz.wait(f"{rows} changes acknowledged", lambda: dbz.acked >= rows, 1800)
    finally:
        dbz.stop()
    assert dbz.started is not None
    return summary(rows, dbz.launched, dbz.started, dbz.last_ack)


def summary(rows: int, launched: float, streaming: float, last: float) -> dict[str, Any]:
    return {
        "seconds_streaming": round(last - streaming, 2),
        "changes_per_s": round(rows / (last - streaming)),
        "seconds_from_launch": round(last - launched, 2),
    }


# -- latency ---------------------------------------------------------------------------------


class Consumer:
    """A consumer in its own process (so that it takes no CPU from the process measured)
    noting each change's arrival time minus its commit time."""

    def __init__(self, bootstrap: str, topic: str, work: Path) -> None:
        self.out = work / f"{topic}.latencies.json"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "consume", "--bootstrap", bootstrap, "--topic", topic,
             "--out", str(self.out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "assigned":  # positioned at offset 0
            raise RuntimeError("the latency consumer did not start")

    def finish(self, expected: int) -> list[float]:
        """Tell it how many changes to expect; it reads until it has them (or 30 s pass)."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{expected}\n")
        self.process.stdin.close()
        self.process.wait(60)
        latencies: list[float] = orjson.loads(self.out.read_bytes())
        return latencies


def consume(bootstrap: str, topic: str, out: Path) -> None:
    from confluent_kafka import Consumer as KafkaConsumer
    from confluent_kafka import TopicPartition

    c = KafkaConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"latency-{os.getpid()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
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


def latency_database(facts: dict[str, str], name: str, slot: str) -> str:
    dsn = fresh_database(facts, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLE_DDL)
        conn.execute("CREATE SEQUENCE ids")
        conn.execute("CREATE PUBLICATION bench FOR TABLE items")
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    return dsn


def latency_result(latencies: list[float], expected: int, seconds: float) -> dict[str, Any]:
    return {
        "events": len(latencies),
        "committed": expected,
        "rate_achieved_per_s": round(expected / seconds),
        "commit_to_topic": percentiles(latencies),
    }


def latency_changehub(
    facts: dict[str, str], log: KafkaLog, bootstrap: str, work: Path, rate: int, seconds: float
) -> dict[str, Any]:
    name = "ch_latency"
    dsn = latency_database(facts, "bench_dbz_latency_ch", "changehub_latency")
    runner = Runner(name, dsn, log, work, "changehub_latency")
    try:
        runner.start()
        consumer = Consumer(bootstrap, f"{name}.public.items", work)
        writer = threading.Thread(target=pgbench, args=(facts, dsn, work, rate, seconds))
        writer.start()
        runner.run(lambda: not writer.is_alive(), timeout=seconds + 120)
        writer.join()
        expected = committed_rows(dsn)
        runner.run(lambda: runner.records >= expected, timeout=60)  # the last ones in flight
    finally:
        runner.close()
    return latency_result(consumer.finish(expected), expected, seconds)


def latency_debezium(
    facts: dict[str, str],
    log: KafkaLog,
    bootstrap: str,
    work: Path,
    rate: int,
    seconds: float,
    poll_ms: int,
) -> dict[str, Any]:
    prefix = f"dbz_latency_{poll_ms}"
    slot = f"debezium_latency_{poll_ms}"
    dsn = latency_database(facts, f"bench_{prefix}", slot)
    topic = f"{prefix}.public.items"
    log.create_topic(topic, TopicConfig(partitions=1, retention_ms=None))
    dbz = Debezium(work / prefix, bootstrap, dsn, slot, prefix, poll_ms)
    try:
        dbz.wait("task start", lambda: dbz.started is not None, 300)
        with psycopg.connect(dsn, autocommit=True) as conn:
            wait_slot(conn, slot, active=True)  # streaming, not just started
        consumer = Consumer(bootstrap, topic, work)
        pgbench(facts, dsn, work, rate, seconds)
        expected = committed_rows(dsn)
        dbz.wait(f"{expected} changes acknowledged", lambda: dbz.acked >= expected, 60)
    finally:
        dbz.stop()
    result = latency_result(consumer.finish(expected), expected, seconds)
    result["poll_interval_ms"] = poll_ms
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
        sub.add_argument("--out", type=Path, required=True)
        a = sub.parse_args(sys.argv[2:])
        consume(a.bootstrap, a.topic, a.out)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--latency-rate", type=int, default=2000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--debezium-poll-ms", type=int, default=10)
    parser.add_argument("--only", choices=["throughput", "latency"])
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
    }
    bootstrap = args.bootstrap or start_kafka(work / "kafka")
    try:
        log = KafkaLog(bootstrap)
        try:
            warm_up(log)
            with postgres(args) as facts:
                with psycopg.connect(facts["PG_DSN"]) as conn:
                    results["machine"]["postgres"] = conn.info.server_version
                if args.only in (None, "throughput"):
                    results["throughput"] = bench_throughput(facts, log, bootstrap, work, args.rows)
                    print("throughput:", json.dumps(results["throughput"]))
                if args.only in (None, "latency"):
                    lat: dict[str, Any] = {
                        "rate_target_per_s": args.latency_rate,
                        "seconds": args.latency_seconds,
                    }
                    lat["changehub"] = latency_changehub(
                        facts, log, bootstrap, work, args.latency_rate, args.latency_seconds
                    )
                    for poll in (500, args.debezium_poll_ms):
                        lat[f"debezium_poll_{poll}ms"] = latency_debezium(
                            facts, log, bootstrap, work,
                            args.latency_rate, args.latency_seconds, poll,
                        )  # fmt: skip
                    results["latency"] = lat
                    print("latency:", json.dumps(lat))
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
    lines = ["| measure | changehub | Debezium | changehub / Debezium |", "|---|---|---|---|"]
    for phase in ("insert", "update"):
        p = results.get("throughput", {}).get(phase)
        if p:
            lines.append(
                f"| {phase}s, changes/s (from launch: s) | {p['changehub']['changes_per_s']:,} "
                f"({p['changehub']['seconds_from_launch']} s) | "
                f"{p['debezium']['changes_per_s']:,} ({p['debezium']['seconds_from_launch']} s) "
                f"| {p['ratio']:.2f} |"
            )
    lat = results.get("latency")
    if lat:
        ours = lat["changehub"]["commit_to_topic"]
        for key, value in lat.items():
            if not key.startswith("debezium_"):
                continue
            theirs = value["commit_to_topic"]
            lines.append(
                f"| commit-to-topic p50 / p99 ms at {lat['rate_target_per_s']:,}/s, Debezium "
                f"poll.interval.ms={value['poll_interval_ms']} | {ours['p50_ms']} / "
                f"{ours['p99_ms']} | {theirs['p50_ms']} / {theirs['p99_ms']} | "
                f"{ours['p50_ms'] / theirs['p50_ms']:.2f} / "
                f"{ours['p99_ms'] / theirs['p99_ms']:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
