"""The sql sink describes a table once per held DuckDB connection, not at every flush: and
afresh after a failed transaction (its DDL rolled back) or when it plans a column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from connectors.sink.sql import SqlSink, SqlSinkConfig
from connectors.sink.sql import sink as sink_module
from connectors.sqldb import TableDescription
from connectors.testing import make_context
from log.api import LogRecord, TopicPartition

TOPIC = "shop.public.orders"
TP = TopicPartition(TOPIC, 0)
N = 100  # records a write and flush: the sink's max_batch_records, so each flush is full


def writes(first: int, **extra: Any) -> list[LogRecord]:
    source = {"name": "shop", "db": "shop", "schema": "public", "table": "orders"}
    return [
        LogRecord(TOPIC, 0, first + i, 1, orjson.dumps({"id": i}), orjson.dumps({
            "before": None, "after": {"id": i, "name": f"n{first + i}", **extra}, "op": "c",
            "ts_ms": 1, "source": source}))
        for i in range(N)
    ]


def test_a_held_connection_describes_a_table_once_and_again_after_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    described: list[str] = []
    real_describe = sink_module.describe_table

    def counting(conn: sa.Connection, schema: str | None, name: str) -> TableDescription | None:
        described.append(name)
        return real_describe(conn, schema, name)

    monkeypatch.setattr(sink_module, "describe_table", counting)
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    config = SqlSinkConfig(name="wh", topics=["shop.*"], url=url, table="{table}",
                           max_batch_records=N)
    sink = SqlSink(config, make_context("wh", tmp_path / "data"))
    sink.start({TP: 0})
    try:
        sink.write(writes(0))
        sink.flush()
        first = len(described)
        assert first >= 1
        sink.write(writes(N))
        sink.flush()
        assert len(described) == first  # the held connection: the table is as left

        # A new column is planned: described and added. Then the transaction fails after the
        # ALTER TABLE (rolled back): the retry must describe again and add the column again.
        real_store = sink_module.store_offsets
        failures = [RuntimeError("offsets store failed")]

        def failing_once(*args: Any) -> None:
            if failures:
                raise failures.pop()
            real_store(*args)

        monkeypatch.setattr(sink_module, "store_offsets", failing_once)
        sink.write(writes(2 * N, extra="x"))
        with pytest.raises(RuntimeError, match="offsets store failed"):
            sink.flush()
        before_retry = len(described)
        assert sink.flush() == {TP: 3 * N}
        assert len(described) > before_retry
    finally:
        sink.stop()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, name, extra FROM orders ORDER BY id")).all()
    finally:
        engine.dispose()
    assert rows == [(i, f"n{2 * N + i}", "x") for i in range(N)]
