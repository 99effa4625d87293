"""changehub's sinks read topics that Debezium wrote: key ``{"id": ...}`` and the change
envelope (before, after, op, source, ts_ms, transaction), tombstones after deletes, either as
bare JSON or wrapped with their schema as Kafka Connect's JsonConverter writes them with
``schemas.enable=true``. The records are produced here with confluent-kafka, as a Kafka
Connect worker running Debezium's Postgres connector would; a hub whose sinks point at the
topic (an SQL table and a search index) must end up with the table's final state."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import opensearchpy
import orjson
import pytest

from tests.fixtures.services import KafkaCluster, OpenSearchServer
from tests.integration.kafka.conftest import unique

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]

KEY_SCHEMA = {
    "type": "struct",
    "fields": [{"type": "int32", "optional": False, "field": "id"}],
    "optional": False,
    "name": "dbserver1.inventory.customers.Key",
}
ROW_SCHEMA = {
    "type": "struct",
    "fields": [
        {"type": "int32", "optional": False, "field": "id"},
        {"type": "string", "optional": False, "field": "first_name"},
        {"type": "string", "optional": True, "field": "email"},
    ],
    "optional": True,
    "name": "dbserver1.inventory.customers.Value",
}
VALUE_SCHEMA = {
    "type": "struct",
    "fields": [
        {**ROW_SCHEMA, "field": "before"},
        {**ROW_SCHEMA, "field": "after"},
        {
            "type": "struct",
            "fields": [
                {"type": "string", "optional": False, "field": "version"},
                {"type": "string", "optional": False, "field": "connector"},
                {"type": "string", "optional": False, "field": "name"},
                {"type": "int64", "optional": False, "field": "ts_ms"},
                {"type": "string", "optional": True, "field": "snapshot"},
                {"type": "string", "optional": False, "field": "db"},
                {"type": "string", "optional": False, "field": "schema"},
                {"type": "string", "optional": False, "field": "table"},
                {"type": "int64", "optional": True, "field": "txId"},
                {"type": "int64", "optional": True, "field": "lsn"},
            ],
            "optional": False,
            "name": "io.debezium.connector.postgresql.Source",
            "field": "source",
        },
        {"type": "string", "optional": False, "field": "op"},
        {"type": "int64", "optional": True, "field": "ts_ms"},
        {
            "type": "struct",
            "fields": [
                {"type": "string", "optional": False, "field": "id"},
                {"type": "int64", "optional": False, "field": "total_order"},
                {"type": "int64", "optional": False, "field": "data_collection_order"},
            ],
            "optional": True,
            "name": "event.block",
            "field": "transaction",
        },
    ],
    "optional": False,
    "name": "dbserver1.inventory.customers.Envelope",
    "version": 2,
}

Row = dict[str, Any]


def change(op: str, before: Row | None, after: Row | None, lsn: int) -> dict[str, Any]:
    """A Debezium Postgres connector's envelope."""
    return {
        "before": before,
        "after": after,
        "source": {
            "version": "3.6.1.Final",
            "connector": "postgresql",
            "name": "dbserver1",
            "ts_ms": 1700000000000 + lsn,
            "snapshot": "true" if op == "r" else "false",
            "db": "inventory",
            "schema": "inventory",
            "table": "customers",
            "txId": 500 + lsn,
            "lsn": 24000000 + lsn,
        },
        "op": op,
        "ts_ms": 1700000000100 + lsn,
        "transaction": None,
    }


def history() -> Iterator[tuple[Row, dict[str, Any] | None]]:
    """(key, envelope or None for a tombstone), as Debezium emits them for a few changes."""
    sally = {"id": 1001, "first_name": "Sally", "email": "sally@example.com"}
    george = {"id": 1002, "first_name": "George", "email": None}
    anne = {"id": 1003, "first_name": "Anne", "email": "anne@example.com"}
    yield {"id": 1001}, change("r", None, sally, 1)
    yield {"id": 1002}, change("r", None, george, 2)
    yield {"id": 1003}, change("c", None, anne, 3)
    sally2 = {**sally, "email": "sally.t@example.com"}
    yield {"id": 1001}, change("u", sally, sally2, 4)
    yield {"id": 1002}, change("d", george, None, 5)
    yield {"id": 1002}, None
    yield {"id": 1004}, change("c", None, {"id": 1004, "first_name": "Ed", "email": None}, 6)


FINAL = {
    1001: {"id": 1001, "first_name": "Sally", "email": "sally.t@example.com"},
    1003: {"id": 1003, "first_name": "Anne", "email": "anne@example.com"},
    1004: {"id": 1004, "first_name": "Ed", "email": None},
}


def produce(bootstrap: str, topic: str, wrapped: bool) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for key, value in history():
        k: Any = {"schema": KEY_SCHEMA, "payload": key} if wrapped else key
        v: Any = value
        if wrapped and value is not None:
            v = {"schema": VALUE_SCHEMA, "payload": value}
        # a tombstone is a null value in both forms: the converter writes no bytes for null
        producer.produce(topic, orjson.dumps(v) if v is not None else None, orjson.dumps(k))
    assert producer.flush(30) == 0


@pytest.mark.parametrize("form", ["bare", "schema-wrapped"])
def test_sinks_apply_a_topic_debezium_wrote(
    kafka: KafkaCluster, opensearch: OpenSearchServer, tmp_path: Path, form: str
) -> None:
    topic = unique("dbserver1.inventory.customers")
    index = unique("debezium")
    produce(kafka.bootstrap, topic, wrapped=form == "schema-wrapped")
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        f"""
log: {{backend: kafka, kafka: {{bootstrap: "{kafka.bootstrap}"}}}}
api: {{enabled: false}}
sinks:
  - name: {unique("warehouse")}
    type: sql
    topics: ["{topic}"]
    url: sqlite:///./warehouse.db
    table: "{{table}}"
  - name: {unique("search")}
    type: opensearch
    topics: ["{topic}"]
    hosts: ["{opensearch.url}"]
    index: "{index}"
"""
    )
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "run", str(config), "--until-caught-up"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    with sqlite3.connect(tmp_path / "warehouse.db") as conn:
        rows = conn.execute("SELECT id, first_name, email FROM customers ORDER BY id").fetchall()
    assert {r[0]: dict(zip(("id", "first_name", "email"), r, strict=True)) for r in rows} == FINAL
    client = opensearchpy.OpenSearch([opensearch.url])
    try:
        client.indices.refresh(index=index)
        hits = client.search(index=index, body={"size": 100})["hits"]["hits"]
        assert {int(h["_id"]): h["_source"] for h in hits} == FINAL
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
        client.close()
