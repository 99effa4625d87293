"""Hostile data end to end: Postgres -> embedded log -> DuckDB (sql sink) and OpenSearch.

Each case ends checked against the target, row by row: the value arrived exactly, or the
record went to the dead-letter topic with a reason saying why — never lost silently, never
a crash of the hub, never SQL or a query injected through data or names.

* column names with quotes, spaces, dots, non-Latin letters and SQL text in them; table
  names with spaces, quotes and Cyrillic and CJK letters (escaped topic names, see
  connectors/topics.py), snapshotted and streamed;
* NUL bytes and every byte value in bytea; text with every legal Unicode character class;
* NaN and ±Infinity in numeric, real and double precision;
* a 1,600-column table (Postgres' maximum);
* a 20 MB text value and a 100 MB bytea value (133 MB of base64 in the event);
* invalid UTF-8 from a SQL_ASCII database: a clear error naming the fix, no event.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import psycopg
import pytest
from psycopg import sql

from hub.config import load_pipeline
from hub.runtime import Hub
from hub.state import ConnectorStatus
from tests.fixtures.services import OpenSearchServer, PostgresServer
from tests.integration.postgres.conftest import _database
from tests.integration.postgres.pipeline import Database
from tests.security.hubs import status, wait_for

pytestmark = pytest.mark.integration

WEIRD_COLUMNS = [
    'say "hi"', "with space", "dot.ted", "Ωμέγα", "名前", "O'Brien",
    "x); DROP TABLE items; --", "UPPER lower", "$1", "%s", "{table}", "back\\slash",
]
# table -> the DuckDB table and the index the sinks' templates make of it
WEIRD_TABLES = {
    "order items": ("order_items", "hostile-order_items"),
    'say "hi"': ("say_hi", "hostile-say__hi_"),
    "Заказы 注文": ("Заказы_注文", "hostile-заказы_注文"),
    "dot.ted": ("dot_ted", "hostile-dot.ted"),  # listed as public.dot.ted: the first dot splits
}


@pytest.fixture
def db(postgres: PostgresServer) -> Iterator[Database]:
    yield from _database(postgres, postgres.dsn)


@contextmanager
def pipeline(tmp_path: Path, dsn: str, tables: list[str], search_url: str | None = None,
             extra: str = "") -> Iterator[Hub]:
    search = (f'  - {{name: search, type: opensearch, topics: ["shop.*"], hosts: ["{search_url}"],'
              ' index: "hostile-{table}", errors: {tolerance: all}, flush_interval: 100ms}\n'
              if search_url else "")
    (tmp_path / "p.yaml").write_text(
        f"log: {{path: {tmp_path / 'log'}}}\napi: {{enabled: false}}\n"
        f"sources:\n  - {{name: shop, type: postgres, dsn: \"{dsn}\", tables: {tables}, "
        f"heartbeat_interval: 500ms{extra}}}\n"
        "sinks:\n"
        f'  - {{name: warehouse, type: sql, topics: ["shop.*"], '
        f'url: "duckdb:///{tmp_path / "wh.duckdb"}", table: "{{table}}", '
        f"errors: {{tolerance: all}}, flush_interval: 100ms}}\n" + search
    )
    hub = Hub(load_pipeline(tmp_path / "p.yaml", env={}))
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def settle(hub: Hub, sink: str, records: int, timeout: float = 180.0) -> ConnectorStatus:
    """Wait until ``sink`` wrote or dead-lettered ``records`` records (or failed)."""
    def settled() -> bool:
        s = status(hub, sink)
        return s.records + s.dead_letters >= records or s.state.value == "FAILED"

    wait_for(settled, f"{records} records through {sink} (now {status(hub, sink)})", timeout)
    return status(hub, sink)


def warehouse_rows(tmp_path: Path, table: str) -> list[dict[str, Any]]:
    """The rows of ``table`` (read once the hub stopped: DuckDB locks its file)."""
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        cur = conn.execute(f'SELECT * FROM "{table}" ORDER BY 1')
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_weird_table_and_column_names_reach_duckdb_and_opensearch_quoted(
    db: Database, opensearch: OpenSearchServer, tmp_path: Path
) -> None:
    columns = sql.SQL(", ").join(
        sql.SQL("{} text").format(sql.Identifier(c)) for c in WEIRD_COLUMNS
    )
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE items (id int PRIMARY KEY, {})").format(columns))
        for i in (1, 2):
            conn.execute(
                sql.SQL("INSERT INTO items VALUES (%s, {})").format(
                    sql.SQL(", ").join(sql.Placeholder() * len(WEIRD_COLUMNS))),
                [i, *[f"{c} = {i}'; --" for c in WEIRD_COLUMNS]],
            )
        for table in WEIRD_TABLES:
            conn.execute(sql.SQL('CREATE TABLE {} (id int PRIMARY KEY, "имя" text)').format(
                sql.Identifier(table)))
            conn.execute(sql.SQL("INSERT INTO {} VALUES (1, %s)").format(sql.Identifier(table)),
                         [f"{table} 1"])
    tables = ["public.items", *(f"public.{t}" for t in WEIRD_TABLES)]
    total = 2 + 2 * len(WEIRD_TABLES)
    with pipeline(tmp_path, db.dsn, tables, opensearch.url) as hub:
        with psycopg.connect(db.dsn, autocommit=True) as conn:  # streamed, after the snapshot
            for table in WEIRD_TABLES:
                conn.execute(sql.SQL("INSERT INTO {} VALUES (2, %s)").format(
                    sql.Identifier(table)), [f"{table} 2"])
        warehouse = settle(hub, "warehouse", total)
        search = settle(hub, "search", total)
        topics = set(hub.log.list_topics())
    assert warehouse.dead_letters == 0 and warehouse.state.value != "FAILED", warehouse
    assert search.state.value != "FAILED", search
    # each table its own topic, escaped as connectors/topics.py says
    assert {"shop.public.order_u0020items", "shop.public.say_u0020_u0022hi_u0022",
            "shop.public._u0417_u0430_u043a_u0430_u0437_u044b_u0020_u6ce8_u6587"} <= topics
    rows = warehouse_rows(tmp_path, "items")
    assert len(rows) == 2
    for i, row in enumerate(rows, 1):
        assert {c: row[c] for c in WEIRD_COLUMNS} == {c: f"{c} = {i}'; --" for c in WEIRD_COLUMNS}
    # the sql sink names tables from the event's source table, sanitised to word characters
    for table, (target, _) in WEIRD_TABLES.items():
        assert warehouse_rows(tmp_path, target) == [
            {"id": i, "имя": f"{table} {i}"} for i in (1, 2)]
    # The sink's flush does not refresh the index (nor should it); without a refresh the
    # search sees the documents only after the engine's next scheduled refresh, which on a
    # loaded machine can come after the search (the cause of this test's failure in the
    # full suite).
    httpx.post(f"{opensearch.url}/hostile-*/_refresh").raise_for_status()
    documents = httpx.get(f"{opensearch.url}/hostile-items/_search?size=10").json()
    sources = sorted((h["_source"] for h in documents["hits"]["hits"]), key=lambda d: d["id"])
    assert len(sources) + search.dead_letters == 2, documents
    for doc in sources:
        i = doc["id"]
        assert {c: doc.get(c) for c in WEIRD_COLUMNS if "." not in c} == {
            c: f"{c} = {i}'; --" for c in WEIRD_COLUMNS if "." not in c}
    for table, (_, index) in WEIRD_TABLES.items():
        hits = httpx.get(f"{opensearch.url}/{index}/_search?size=10").json()["hits"]["hits"]
        assert sorted((h["_source"]["id"], h["_source"]["имя"]) for h in hits) == [
            (i, f"{table} {i}") for i in (1, 2)], (index, hits)


def test_nan_infinity_nul_bytes_and_every_byte_value(
    db: Database, tmp_path: Path
) -> None:
    every_byte = bytes(range(256))
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, n numeric, r real, "
                     "d double precision, b bytea, t text)")
        values = [
            (1, "NaN", "NaN", "NaN", b"\x00", "plain"),
            (2, "Infinity", "Infinity", "Infinity", b"\x00\x00nul\x00", "tab\tnew\nline"),
            (3, "-Infinity", "-Infinity", "-Infinity", every_byte, "\u2028\u2029\ufeff"),
            (4, "1e-1000", "1.17549435e-38", "2.2250738585072014e-308", b"", "\U0001f600"),
        ]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO items VALUES (%s, %s::numeric, %s::real, "
                            "%s::float8, %s, %s)", values)
    with pipeline(tmp_path, db.dsn, ["public.items"]) as hub:
        warehouse = settle(hub, "warehouse", 4)
    assert warehouse.dead_letters == 0 and warehouse.state.value != "FAILED", warehouse
    rows = {r["id"]: r for r in warehouse_rows(tmp_path, "items")}
    assert [rows[i]["b"] for i in (1, 2, 3, 4)] == [
        base64.b64encode(v[4]).decode() if isinstance(rows[1]["b"], str) else v[4]
        for v in values
    ]
    assert [rows[i]["t"] for i in (1, 2, 3, 4)] == [v[5] for v in values]
    for i, special in ((1, "nan"), (2, "inf"), (3, "-inf")):
        for col in ("n", "r", "d"):
            got = rows[i][col]
            assert str(got).lower().replace("infinity", "inf") == special, (col, got)
    assert not math.isnan(float(rows[4]["d"]))


def test_a_table_of_1600_columns(db: Database, tmp_path: Path) -> None:
    columns = ", ".join(f"c{i} int" for i in range(1, 1600))
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE wide (id int PRIMARY KEY, {columns})")
        conn.execute(f"INSERT INTO wide SELECT g, {', '.join(['g'] * 1599)} "
                     "FROM generate_series(1, 20) g")
    with pipeline(tmp_path, db.dsn, ["public.wide"]) as hub:
        settle(hub, "warehouse", 20)
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            conn.execute("UPDATE wide SET c1599 = -1 WHERE id = 7")
        warehouse = settle(hub, "warehouse", 21)
    assert warehouse.dead_letters == 0 and warehouse.state.value != "FAILED", warehouse
    rows = warehouse_rows(tmp_path, "wide")
    assert len(rows[0]) == 1600
    assert [r["c1"] for r in rows] == list(range(1, 21))
    assert [r["id"] for r in rows if r["c1599"] == -1] == [7]


def test_huge_values_arrive_or_go_to_the_dead_letter_topic_with_a_reason(
    db: Database, tmp_path: Path
) -> None:
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id int PRIMARY KEY, t text, b bytea)")
        conn.execute("INSERT INTO big VALUES (1, 'small', '\\x00')")
        conn.execute("INSERT INTO big VALUES (2, repeat('x', 20 * 1024 * 1024), NULL)")
        conn.execute("INSERT INTO big VALUES (3, 'blob', "
                     "decode(repeat('ab', 100 * 1024 * 1024), 'hex'))")
        conn.execute("INSERT INTO big VALUES (4, 'after', NULL)")
    with pipeline(tmp_path, db.dsn, ["public.big"]) as hub:
        sink = settle(hub, "warehouse", 4, timeout=400)
        assert status(hub, "shop").state.value != "FAILED", status(hub, "shop").error
    assert sink.state.value != "FAILED", sink.error
    rows = {r["id"]: r for r in warehouse_rows(tmp_path, "big")}
    assert {1, 4} <= set(rows)
    assert set(rows) | set(range(1, 5)) == {1, 2, 3, 4}
    if 2 in rows:
        assert len(rows[2]["t"]) == 20 * 1024 * 1024
    assert len(rows) + sink.dead_letters == 4


def test_invalid_utf8_from_a_sql_ascii_database_is_a_clear_error(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    name = f"ascii_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.superuser_dsn, autocommit=True) as su:
        su.execute(f"CREATE DATABASE {name} OWNER {postgres.user} ENCODING 'SQL_ASCII' "
                   "TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
    dsn = postgres.dsn.rsplit("/", 1)[0] + "/" + name
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, t text)")
            conn.execute("INSERT INTO items VALUES (1, 'ok'), "
                         "(2, convert_from('\\xff41', 'SQL_ASCII'))")
        with pipeline(tmp_path, dsn, ["public.items"]) as hub:
            wait_for(lambda: status(hub, "shop").error, "the source's error", 180.0)
            error = status(hub, "shop").error or ""
            # Postgres itself refuses to convert to the UTF8 the hub asks for: no event.
            assert "invalid byte sequence" in error and "UTF8" in error, error
            assert status(hub, "shop").records == 0
            assert postgres.password not in error
    finally:
        with psycopg.connect(postgres.superuser_dsn, autocommit=True) as su:
            su.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                       "WHERE database = %s AND NOT active", (name,))
            su.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
