"""The shared source conformance suite on the Postgres source, against a real PostgreSQL.

Batches of two events make every resume land inside the snapshot (chunks of two rows)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from connectors.source.postgres.source import PostgresSource, PostgresSourceConfig
from connectors.testing import SourceConformance, SourceHarness
from tests.integration.postgres.pipeline import Database, config

pytestmark = pytest.mark.integration


class PostgresHarness(SourceHarness):
    source_class = PostgresSource
    settle_s = 0.5

    def __init__(self, db: Database) -> None:
        self.db = db
        db.execute("CREATE TABLE items (id serial PRIMARY KEY, v text)")

    def config(self, name: str) -> PostgresSourceConfig:
        return config(
            self.db, name=name, snapshot_chunk_size=2, max_batch_events=2, heartbeat_interval="1s"
        )

    def produce(self, count: int) -> list[bytes]:
        rows = self.db.rows(
            "INSERT INTO items (v) SELECT 'x' FROM generate_series(1, %s) RETURNING id", (count,)
        )
        return [orjson.dumps({"id": r[0]}) for r in rows]


class TestPostgresConformance(SourceConformance):
    @pytest.fixture
    def source_harness(self, db: Database) -> Iterator[SourceHarness]:
        harness = PostgresHarness(db)
        yield harness
        harness.close()
