"""MariaDB -> log -> OpenSearch through the real ``changehub`` CLI: configs/mysql-to-search.yaml
end to end (snapshot, then streamed inserts, updates and deletes); every row equals its
document and no other document exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import opensearchpy
import pytest

from tests.fixtures.services import OpenSearchServer
from tests.integration.mysql.pipeline import Database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "configs" / "mysql-to-search.yaml"
CHANGEHUB = [sys.executable, "-m", "hub.cli"]

SCHEMA = (
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(40), amount DECIMAL(14,4), "
    "placed DATETIME(6), status ENUM('open','paid','sent'), tags SET('new','vip','gift'), "
    "meta JSON, qty TINYINT UNSIGNED, note TEXT)"
)
COLUMNS = "id, customer, amount, placed, status, tags, meta, qty, note"


@pytest.fixture
def search(opensearch: OpenSearchServer) -> Iterator[tuple[str, opensearchpy.OpenSearch]]:
    client = opensearchpy.OpenSearch([opensearch.url])
    client.indices.delete(index="orders*", ignore_unavailable=True)
    try:
        yield opensearch.url, client
    finally:
        client.indices.delete(index="orders*", ignore_unavailable=True)
        client.close()


def run_until_caught_up(cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        [*CHANGEHUB, "run", str(CONFIG), "--until-caught-up"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]


def documents(client: opensearchpy.OpenSearch) -> dict[str, dict[str, Any]]:
    client.indices.refresh(index="orders")
    hits = client.search(index="orders", body={"size": 10000})["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def expected(db: Database) -> dict[str, dict[str, Any]]:
    """The rows as the documents must hold them (the source's JSON mapping)."""
    out = {}
    for id_, customer, amount, placed, status, tags, meta, qty, note in db.rows(
        f"SELECT {COLUMNS} FROM orders"
    ):
        out[str(id_)] = {
            "id": id_, "customer": customer, "amount": None if amount is None else str(amount),
            "placed": None if placed is None else placed.isoformat(), "status": status,
            "tags": None if tags is None else [t for t in ("new", "vip", "gift")
                                               if t in str(tags).split(",")],
            "meta": None if meta is None else json.loads(meta), "qty": qty, "note": note,
        }  # fmt: skip
    return out


def insert(db: Database, ids: range, version: int) -> None:
    db.executemany(
        f"INSERT INTO orders ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (i, f"c{i % 7} v{version}", f"{i}.{i % 10000:04d}", f"2024-02-29 23:59:{i % 60:02d}."
             f"{i:06d}", ("open", "paid", "sent")[i % 3], "vip,new" if i % 2 else "",
             json.dumps({"k": [i, None], "s": "zwei ü"}), i % 256, "ñ 😀" * (i % 3))
            for i in ids
        ],
    )  # fmt: skip


def test_mysql_to_search_config_mirrors_inserts_updates_and_deletes(
    db: Database, search: tuple[str, opensearchpy.OpenSearch], tmp_path: Path
) -> None:
    url, client = search
    db.execute(SCHEMA)
    insert(db, range(1, 61), version=0)
    db.execute("INSERT INTO orders (id) VALUES (1000)")  # every nullable column null
    s = db.server
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "SEARCH_URL": url,
        "MYSQL_URL": f"mysql://{s.user}:{s.password}@{s.host}:{s.port}/",
        "MYSQL_DATABASE": str(db.name),
    }  # fmt: skip
    run_until_caught_up(tmp_path, env)  # the snapshot
    assert documents(client) == expected(db)
    db.execute("UPDATE orders SET customer = 'changed', amount = 1.5, tags = 'gift' WHERE id <= 10")
    db.execute("UPDATE orders SET id = id + 5000 WHERE id = 11")  # a key change
    db.execute("DELETE FROM orders WHERE id > 40 AND id < 1000")
    insert(db, range(100, 120), version=1)
    run_until_caught_up(tmp_path, env)  # streamed changes
    got = documents(client)
    assert "11" not in got and "5011" in got
    assert got == expected(db)
    assert sorted(client.indices.get_alias(name="orders")) == ["orders-v1"]
