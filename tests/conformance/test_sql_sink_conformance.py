"""The sink conformance suite on the sql sink, against SQLite, DuckDB, PostgreSQL, MariaDB."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from connectors.envelope import encode_key
from connectors.sink.sql import SqlSink, SqlSinkConfig
from connectors.sqldb import describe_table
from connectors.testing import TOPICS, SinkConformance, SinkHarness, final_rows
from log.api import LogRecord
from tests.conformance.targets import SQL_TARGETS, sql_url


class SqlSinkHarness(SinkHarness):
    sink_class = SqlSink

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url)

    def config(self, name: str) -> SqlSinkConfig:
        return SqlSinkConfig(name=name, topics=["conformance.*"], url=self.url)

    def state(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for topic in TOPICS:
                table_name = topic.replace(".", "_")
                described = describe_table(conn, None, table_name)
                if described is None:
                    continue
                table = sa.Table(
                    table_name,
                    sa.MetaData(),
                    *(sa.Column(c, t) for c, t in described.columns.items()),
                )
                rows = out.setdefault(topic, {})
                for row in conn.execute(sa.select(table)).mappings():
                    key = encode_key(row, ["id"]).decode()
                    rows[key] = {c: v for c, v in row.items() if v is not None}
        return out

    def expected(self, records: Sequence[LogRecord]) -> dict[str, dict[str, dict[str, Any]]]:
        # MySQL/MariaDB have no BOOLEAN: it is TINYINT(1), which reads back as 0/1.
        bools_as_ints = self.engine.dialect.name in ("mysql", "mariadb")
        return {
            topic: {
                key: {
                    c: _as_stored(v, bools_as_ints) for c, v in row.items() if v is not None
                }
                for key, row in rows.items()
            }
            for topic, rows in final_rows(records).items()
        }

    def close(self) -> None:
        self.engine.dispose()


def _as_stored(value: Any, bools_as_ints: bool) -> Any:
    """A JSON value as the sink stores it: objects and arrays as JSON text."""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, bool) and bools_as_ints:
        return int(value)
    return value


class TestSqlSinkConformance(SinkConformance):
    @pytest.fixture(params=SQL_TARGETS)
    def sink_harness(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> Iterator[SqlSinkHarness]:
        for url in sql_url(request, request.param, tmp_path):
            harness = SqlSinkHarness(url)
            try:
                yield harness
            finally:
                harness.close()
