"""The sql sink on a real PostgreSQL server: schema-qualified targets and created types."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.envelope import encode_key, event_records
from connectors.sink.sql import SqlSink, SqlSinkConfig
from connectors.testing import make_context
from log.api import LogRecord
from tests.fixtures.services import PostgresServer

pytestmark = pytest.mark.integration


@pytest.fixture
def schema(postgres: PostgresServer) -> Iterator[str]:
    name = f"analytics_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres.dsn)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    yield name
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        conn.execute(sa.text("DELETE FROM _changehub_offsets WHERE sink = 'pg-sink'"))
    engine.dispose()


def test_events_land_in_a_schema_qualified_table_with_inferred_types(
    postgres: PostgresServer, schema: str, tmp_path: Path
) -> None:
    config = SqlSinkConfig(
        name="pg-sink", topics=["shop.*"], url=postgres.dsn, table=f"{schema}.{{table}}"
    )
    sink = SqlSink(config, make_context("pg-sink", tmp_path))
    sink.start({})
    records = []
    source = {"name": "shop", "schema": "public", "table": "Orders"}
    changes = [
        ("c", {"id": 1, "name": "a", "price": 1.5, "paid": True, "doc": {"k": 1}}),
        ("c", {"id": 2, "name": "b", "price": 2.0, "paid": False, "doc": None}),
        ("u", {"id": 1, "name": "a2", "price": 1.5, "paid": True, "doc": {"k": 2}}),
        ("d", {"id": 2}),
    ]
    for op, row in changes:
        for rec in event_records(
            topic="shop.public.Orders", key=encode_key(row, ["id"]), op=op,  # type: ignore[arg-type]
            before=row if op == "d" else None, after=None if op == "d" else row,
            source=source, ts_ms=1,
        ):
            records.append(LogRecord(rec.topic, 0, len(records), 1, rec.key, rec.value))
    try:
        sink.write(records)
        sink.flush()
    finally:
        sink.stop()
    engine = sa.create_engine(postgres.dsn)
    try:
        with engine.connect() as conn:
            types = dict(conn.execute(sa.text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = :s AND table_name = 'Orders'"
            ), {"s": schema}).all())
            got = conn.execute(sa.text(f'SELECT * FROM "{schema}"."Orders"')).all()
    finally:
        engine.dispose()
    assert types == {
        "id": "bigint", "name": "text", "price": "double precision", "paid": "boolean",
        "doc": "text",
    }
    assert got == [(1, "a2", 1.5, True, '{"k":2}')]
