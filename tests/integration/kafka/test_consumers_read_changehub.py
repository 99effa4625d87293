"""Kafka Connect sinks and Debezium consumers read what changehub writes (issue 8).

A hub runs a Postgres source on the Kafka backend; then a JVM reads the topic through the two
readers those users have: Kafka Connect's ``JsonConverter`` (``schemas.enable=false``, the
converter a Kafka Connect sink reads a JSON topic through) and Debezium's own serde
(``DebeziumSerdes.payloadJson`` with ``from.field=after``). Both must understand every record
(snapshot reads, inserts, updates, deletes and their tombstones), and the rows they rebuild
must equal the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import KafkaCluster
from tests.integration.kafka.conftest import unique
from tests.integration.postgres.conftest import db  # noqa: F401 - the fixture
from tests.integration.postgres.pipeline import Database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent / "consumers"
sys.path.insert(0, str(ROOT))  # services/ is not an installed package
from services.java import Bundle, jdk  # noqa: E402

READER = Bundle(
    "test-debezium-consumers-3.6.1.Final", HERE / "pom.xml", launcher=HERE / "EnvelopeReader.java"
)


def hub(cwd: Path, config: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", "hub.cli", "run", str(config), "--until-caught-up"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


def read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    READER.install()
    res = subprocess.run(
        [str(jdk() / "bin" / "java"), "-Xmx256m", "-cp", READER.classpath(),
         "EnvelopeReader", bootstrap, topic],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-4000:]
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    return sorted((json.loads(line) for line in lines), key=lambda r: (r["partition"], r["offset"]))


def test_kafka_connect_and_debezium_consumers_read_what_changehub_writes(
    db: Database,  # noqa: F811 - the fixture imported above
    kafka: KafkaCluster,
    tmp_path: Path,
) -> None:
    db.execute(
        "CREATE TABLE customers (id int PRIMARY KEY, first_name text NOT NULL, email text, "
        "balance numeric(10,2), seen timestamptz)"
    )
    db.execute(
        "INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com', 12.50, now()), "
        "(2, 'Brian', NULL, 0.10, NULL), (3, 'Chen', 'chen@example.com', NULL, now())"
    )
    source = unique("shop").replace("-", "_")
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        f"log:\n  backend: kafka\n  kafka: {{bootstrap: '{kafka.bootstrap}'}}\n"
        "api: {enabled: false}\n"
        f"sources:\n  - name: {source}\n    type: postgres\n    dsn: '{db.dsn}'\n"
        "    tables: [public.customers]\n    snapshot: initial\n"
        "sinks: []\n"
    )
    hub(tmp_path, config)  # the snapshot: three reads
    db.execute("INSERT INTO customers VALUES (4, 'Dana', 'dana@example.com', 99.99, now())")
    db.execute("UPDATE customers SET email = 'brian@example.com', balance = 1.00 WHERE id = 2")
    db.execute("DELETE FROM customers WHERE id = 3")
    db.execute("UPDATE customers SET first_name = 'Ada L.' WHERE id = 1")
    hub(tmp_path, config)  # the stream

    records = read_topic(kafka.bootstrap, f"{source}.public.customers")
    ops = [r["connect_value"]["op"] if r["connect_value"] else "tombstone" for r in records]
    assert sorted(ops) == sorted(["r", "r", "r", "c", "u", "d", "tombstone", "u"]), ops

    state: dict[int, dict[str, Any]] = {}
    for r in records:
        # both readers see the key as the row's primary key (Debezium's serde unwraps a key
        # of one field into its value)
        assert set(r["connect_key"]) == {"id"}, r
        key = r["connect_key"]["id"]
        assert r["debezium_key"] == key, r
        value = r["connect_value"]
        if value is None:  # a tombstone follows a delete: log compaction removes the key
            assert key not in state
            continue
        assert {"before", "after", "op", "source", "ts_ms"} <= set(value), value
        assert value["source"]["table"] == "customers" and value["source"]["schema"] == "public"
        # Debezium's serde takes the after image out of the same envelope
        assert r["debezium_after"] == value["after"], r
        if value["op"] == "d":
            assert value["after"] is None and value["before"]["id"] == key
            state.pop(key)
        else:
            state[key] = value["after"]

    table = {
        row[0]: row
        for row in db.rows("SELECT id, first_name, email, balance, seen IS NULL FROM customers")
    }
    assert set(state) == set(table) == {1, 2, 4}
    for key, (_, first_name, email, balance, seen_null) in table.items():
        after = state[key]
        assert (after["first_name"], after["email"]) == (first_name, email)
        assert (None if after["balance"] is None else Decimal(after["balance"])) == balance
        assert (after["seen"] is None) == seen_null
