"""MariaDB tables named with spaces, quotes and Cyrillic and CJK letters: snapshotted and
streamed into escaped topics (connectors/topics.py), each table its own topic, every row
there with the table's real name in the event's source block."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.topics import topic_name
from tests.fixtures.services import MariaDBServer
from tests.integration.mysql.conftest import make_database
from tests.integration.mysql.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration

TABLES = ["order items", 'say "hi"', "Заказы 注文", "dot.ted"]


@pytest.fixture
def db(mariadb: MariaDBServer) -> Iterator[Database]:
    yield from make_database(mariadb)


@pytest.mark.parametrize("listed_by", ["databases", "tables"])
def test_weird_table_names_get_escaped_topics_of_their_own(
    db: Database, tmp_path: Path, listed_by: str
) -> None:
    for table in TABLES:
        quoted = "`" + table.replace("`", "``") + "`"
        db.execute(f"CREATE TABLE {quoted} (id INT PRIMARY KEY, `имя` VARCHAR(40))")
        db.execute(f"INSERT INTO {quoted} VALUES (1, %s)", (f"{table} 1",))
    capture = ({} if listed_by == "databases" else
               {"databases": [], "tables": [f"{db.name}.{t}" for t in TABLES]})
    p = Pipeline(tmp_path / "log", config(db, **capture))
    try:
        p.start()
        for table in TABLES:  # streamed after the snapshot
            quoted = "`" + table.replace("`", "``") + "`"
            db.execute(f"INSERT INTO {quoted} VALUES (2, %s)", (f"{table} 2",))
        topics = {table: topic_name("shop", db.name, table) for table in TABLES}
        p.run_until(lambda: all(len(p.state(t)) == 2 for t in topics.values()),
                    "two rows in each table's topic")
        assert topics["order items"] == f"shop.{db.name}.order_u0020items"
        for table, topic in topics.items():
            assert {k: v["имя"] for k, v in p.state(topic).items()} == {
                1: f"{table} 1", 2: f"{table} 2"}
            assert {e["source"]["table"] for e in p.events(topic)} == {table}
    finally:
        p.close()
