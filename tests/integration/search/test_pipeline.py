"""Postgres -> log -> search index through the real ``changehub`` CLI: configs/pg-to-search.yaml
end to end (every column type, inserts, updates, deletes, truncate), and kill -9 at random
moments during a mixed workload — afterwards every row equals its document and no other
document exists."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import opensearchpy
import pytest

from tests.fixtures.services import OpenSearchServer, PostgresServer
from tests.integration.postgres.conftest import _database
from tests.integration.postgres.pipeline import Database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "configs" / "pg-to-search.yaml"
CHANGEHUB = [sys.executable, "-m", "hub.cli"]
DEADLINE_S = 60.0

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (
    id bigint PRIMARY KEY, customer_id int, total numeric(12, 2), note text,
    status varchar(20), paid boolean, placed timestamptz, local_ts timestamp, day date,
    meta jsonb, ref uuid, score double precision, tags text[], qty smallint);
"""


@pytest.fixture
def db(postgres: PostgresServer) -> Iterator[Database]:
    yield from _database(postgres, postgres.dsn)


@pytest.fixture(params=["opensearch", "elasticsearch"])
def search(request: pytest.FixtureRequest) -> Iterator[tuple[str, opensearchpy.OpenSearch]]:
    server = request.getfixturevalue(request.param)
    client = opensearchpy.OpenSearch([server.url])
    client.indices.delete(index="orders*,customers*", ignore_unavailable=True)
    try:
        yield server.url, client
    finally:
        client.indices.delete(index="orders*,customers*", ignore_unavailable=True)
        client.close()


def env_for(db: Database, url: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PG_DSN": db.dsn, "SEARCH_URL": url}


def run_until_caught_up(cwd: Path, config: Path, env: dict[str, str]) -> None:
    # a deadline for a loaded CI machine (a kill loop leaves a backlog), not a pace
    result = subprocess.run(
        [*CHANGEHUB, "run", str(config), "--until-caught-up"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-5000:]


def documents(client: opensearchpy.OpenSearch, index: str) -> dict[str, dict[str, Any]]:
    if not client.indices.exists(index=index):
        return {}
    client.indices.refresh(index=index)
    hits = client.search(index=index, body={"size": 10000})["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def expected_orders(db: Database) -> dict[str, dict[str, Any]]:
    """The table's rows as the documents must hold them (the source's JSON mapping)."""
    out = {}
    for row in db.rows(
        "SELECT id, customer_id, total, note, status, paid, placed, local_ts, day, meta, "
        "ref, score, tags, qty FROM orders"
    ):
        (id_, customer, total, note, status, paid, placed, local_ts, day, meta, ref, score,
         tags, qty) = row
        out[str(id_)] = {
            "id": id_, "customer_id": customer,
            "total": None if total is None else str(total), "note": note, "status": status,
            "paid": paid, "placed": placed, "local_ts": local_ts,
            "day": None if day is None else day.isoformat(), "meta": meta,
            "ref": None if ref is None else str(ref), "score": score, "tags": tags, "qty": qty,
        }
    return out


def normalised(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    if out.get("placed") is not None:
        out["placed"] = datetime.fromisoformat(out["placed"].replace("Z", "+00:00"))
    if out.get("local_ts") is not None:
        out["local_ts"] = datetime.fromisoformat(out["local_ts"])
    if out.get("total") is not None:
        out["total"] = str(Decimal(out["total"]))
    return out


def insert_orders(db: Database, ids: range, version: int = 0) -> None:
    for i in ids:
        db.execute(
            "INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, now() - make_interval(secs => %s),"
            " '2024-02-29 23:59:59.123456', '2024-01-31', %s, gen_random_uuid(), %s, %s, %s)",
            (i, i % 5, Decimal(i) + Decimal("0.25"), f"note {i} v{version}",
             "paid" if i % 2 else "open", i % 3 == 0, i, '{"k": [1, 2, null], "s": "two"}',
             i / 3, ["a", f"t{i}"], i % 100),
        )


def test_pg_to_search_config_mirrors_inserts_updates_deletes_and_truncates(
    db: Database, search: tuple[str, opensearchpy.OpenSearch], tmp_path: Path
) -> None:
    url, client = search
    db.execute(SCHEMA)
    db.execute("INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace')")
    insert_orders(db, range(1, 41))
    db.execute("INSERT INTO orders (id) VALUES (1000)")  # every nullable column null
    env = env_for(db, url)
    run_until_caught_up(tmp_path, CONFIG, env)  # the snapshot
    db.execute("UPDATE orders SET note = 'changed', total = 1.50 WHERE id <= 10")
    db.execute("DELETE FROM orders WHERE id > 30 AND id < 1000")
    insert_orders(db, range(50, 60), version=1)
    db.execute("TRUNCATE customers")
    db.execute("INSERT INTO customers VALUES (3, 'Edsger')")
    run_until_caught_up(tmp_path, CONFIG, env)  # streamed changes
    got = {k: normalised(v) for k, v in documents(client, "orders").items()}
    assert got == expected_orders(db)
    assert documents(client, "customers") == {"3": {"id": 3, "name": "Edsger"}}
    assert sorted(client.indices.get_alias(name="orders")) == ["orders-v1"]

    reindexed = subprocess.run(
        [*CHANGEHUB, "reindex", "-c", str(CONFIG), "search"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert reindexed.returncode == 0, reindexed.stderr[-5000:]
    assert sorted(client.indices.get_alias(name="orders")) == ["orders-v2"]
    got = {k: normalised(v) for k, v in documents(client, "orders").items()}
    assert got == expected_orders(db)


@contextmanager
def workload(db: Database, seed: int) -> Iterator[None]:
    """Random inserts, updates and deletes on orders in a thread until the block ends."""
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        rng = random.Random(seed)
        next_id = 10_000
        try:
            while not stop.is_set():
                choice = rng.random()
                if choice < 0.5:
                    insert_orders(db, range(next_id, next_id + rng.randint(1, 5)), version=1)
                    next_id += 5
                elif choice < 0.8:
                    db.execute("UPDATE orders SET note = %s, qty = qty + 1 WHERE id %% 7 = %s",
                               (f"u{rng.random()}", rng.randint(0, 6)))
                else:
                    db.execute("DELETE FROM orders WHERE id IN (SELECT id FROM orders "
                               "ORDER BY random() LIMIT 3)")
                stop.wait(0.01)  # pace the writer, not a synchronisation
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(DEADLINE_S)
    assert not failures, failures


@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_the_index_equal_to_the_table(
    db: Database, opensearch: OpenSearchServer, tmp_path: Path
) -> None:
    client = opensearchpy.OpenSearch([opensearch.url])
    client.indices.delete(index="orders*,customers*", ignore_unavailable=True)
    db.execute(SCHEMA)
    insert_orders(db, range(1, 301))
    env = env_for(db, opensearch.url)
    rng = random.Random(11)
    hub_log = tmp_path / "hub.log"
    hub_log.touch()
    kills = 0
    with workload(db, seed=5):
        for run in range(1, 21):
            with open(hub_log, "ab") as out:
                hub = subprocess.Popen([*CHANGEHUB, "run", str(CONFIG)], cwd=tmp_path, env=env,
                                       stdout=subprocess.DEVNULL, stderr=out)
            # Wait until this run's sink is up, so that every kill lands in the sink's work
            # (and the source's), however slow the machine is.
            deadline = time.monotonic() + DEADLINE_S
            while hub_log.read_text().count("sink search started") < run:
                assert hub.poll() is None, hub_log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the sink did not start"
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))  # the random moment of the crash, not a wait
            assert hub.poll() is None, hub_log.read_text()[-3000:]
            hub.send_signal(signal.SIGKILL)
            hub.wait(timeout=30)
            kills += 1
    # The kills landed while the sink was working, not only before it started.
    assert documents(client, "orders"), "no document was written before the last kill"
    run_until_caught_up(tmp_path, CONFIG, env)
    got = {k: normalised(v) for k, v in documents(client, "orders").items()}
    expected = expected_orders(db)
    assert kills == 20
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    assert not missing and not extra, f"missing {missing[:10]}, extra {extra[:10]}"
    assert got == expected
    client.indices.delete(index="orders*,customers*", ignore_unavailable=True)
    client.close()
