"""The source conformance suite on the sql_poll source, in each mode, on real databases."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.envelope import encode_key
from connectors.source.sql_poll import SqlPollConfig, SqlPollSource
from connectors.testing import SourceConformance, SourceHarness
from tests.conformance.targets import sql_url

MODES = ["incrementing", "timestamp", "timestamp+incrementing"]
CASES = [
    *(pytest.param(("sqlite", mode), id=f"sqlite-{mode}") for mode in MODES),
    pytest.param(("duckdb", "timestamp+incrementing"), id="duckdb-timestamp+incrementing"),
    *(
        pytest.param(("postgresql", mode), id=f"postgresql-{mode}", marks=pytest.mark.integration)
        for mode in MODES
    ),
    pytest.param(
        ("mariadb", "timestamp+incrementing"),
        id="mariadb-timestamp+incrementing",
        marks=pytest.mark.integration,
    ),
]


class SqlPollHarness(SourceHarness):
    source_class = SqlPollSource
    settle_s = 0.3

    def __init__(self, url: str, mode: str) -> None:
        self.url = url
        self.mode = mode
        self.engine = sa.create_engine(url)
        self.table = sa.Table(
            "items",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("name", sa.String(50)),
            sa.Column("price", sa.Numeric(10, 2)),
            sa.Column("updated_at", sa.DateTime),
        )
        with self.engine.begin() as conn:
            self.table.create(conn)
        self.ids = itertools.count(1)
        # Well in the past, one millisecond apart: never held back by the lag window.
        self.base = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(hours=1)

    def config(self, name: str) -> SqlPollConfig:
        return SqlPollConfig(
            name=name,
            url=self.url,
            table="items",
            mode=self.mode,  # type: ignore[arg-type]
            incrementing_column="id" if "incrementing" in self.mode else None,
            timestamp_column="updated_at" if "timestamp" in self.mode else None,
            interval=50,
            lag="1s" if "timestamp" in self.mode else 0,
            batch_size=2,
        )

    def produce(self, count: int) -> list[bytes]:
        rows = []
        for _ in range(count):
            i = next(self.ids)
            rows.append({
                "id": i, "name": f"item {i}", "price": f"{i}.25",
                "updated_at": self.base + timedelta(milliseconds=i),
            })
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)
        return [encode_key({"id": r["id"]}, ["id"]) for r in rows]

    def close(self) -> None:
        self.engine.dispose()


class TestSqlPollConformance(SourceConformance):
    @pytest.fixture(params=CASES)
    def source_harness(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> Iterator[SqlPollHarness]:
        target, mode = request.param
        for url in sql_url(request, target, tmp_path):
            harness = SqlPollHarness(url, mode)
            try:
                yield harness
            finally:
                harness.close()
