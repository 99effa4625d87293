"""The shared source conformance suite on the MySQL/MariaDB source, against a real MariaDB.

Batches of two events make every resume land inside the snapshot (chunks of two rows)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from connectors.source.mysql.source import MySqlSource, MySqlSourceConfig
from connectors.testing import SourceConformance, SourceHarness
from tests.integration.mysql.pipeline import Database, config

pytestmark = pytest.mark.integration


class MySqlHarness(SourceHarness):
    source_class = MySqlSource
    settle_s = 0.5

    def __init__(self, db: Database) -> None:
        self.db = db
        db.execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10))")

    def config(self, name: str) -> MySqlSourceConfig:
        return config(self.db, name=name, snapshot_chunk_size=2, max_batch_events=2)

    def produce(self, count: int) -> list[bytes]:
        ids = []
        for _ in range(count):
            self.db.execute("INSERT INTO items (v) VALUES ('x')")
            (row,) = self.db.rows("SELECT LAST_INSERT_ID()")
            ids.append(int(row[0]))
        return [orjson.dumps({"id": i}) for i in ids]


class TestMySqlConformance(SourceConformance):
    @pytest.fixture
    def source_harness(self, db: Database) -> Iterator[SourceHarness]:
        harness = MySqlHarness(db)
        yield harness
        harness.close()
