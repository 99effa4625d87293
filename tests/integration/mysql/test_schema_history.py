"""Without column names in the binlog (binlog_row_metadata=MINIMAL) the source keeps a
schema history: ALTER TABLE mid-stream and while it is stopped, and every event still comes
out with the columns it was written with, also after the restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.source.mysql.doctor import diagnose
from tests.integration.mysql.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration


@pytest.fixture
def minimal_metadata(db: Database) -> Iterator[None]:
    """The session's server writes MINIMAL row metadata (no column names) for the test."""
    root = Database.root(db.server)
    root.execute("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
    try:
        yield
    finally:
        root.execute("SET GLOBAL binlog_row_metadata = 'FULL'")
        root.close()


def by_id(p: Pipeline, topic: str) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for e in p.events(topic):
        row = e["after"] or e["before"]
        out.setdefault(row["id"], []).append(e)
    return out


def test_alter_table_mid_stream_and_across_a_restart(
    db: Database, log_dir: Path, minimal_metadata: None
) -> None:
    db.execute(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), status ENUM('a','b'), "
        "tags SET('x','y'), qty INT UNSIGNED)"
    )
    db.execute("INSERT INTO items VALUES (1, 'one', 'b', 'y', 4000000000)")
    cfg = config(db)
    assert {f.check: f.level for f in diagnose(cfg)}["binlog_row_metadata"] == "warning"
    p = Pipeline(log_dir, cfg)
    topic = p.topic(db, "items")
    try:
        p.start()
        db.execute("INSERT INTO items VALUES (2, 'two', 'a', 'x,y', 7)")
        db.execute("ALTER TABLE items ADD COLUMN note VARCHAR(10) DEFAULT 'n' AFTER id")
        db.execute("INSERT INTO items VALUES (3, 'three', 'tri', 'b', '', 9)")
        p.run_until(lambda: 3 in p.state(topic), "row 3 in the log")
        p.stop()

        # While the source is stopped, the table changes shape twice more.
        db.execute("INSERT INTO items VALUES (4, 'four', 'fo', 'a', 'y', 1)")
        db.execute("ALTER TABLE items DROP COLUMN qty, RENAME COLUMN name TO title")
        db.execute("INSERT INTO items VALUES (5, 'five', 'fi', 'b', 'x')")
        db.execute(
            "ALTER TABLE items MODIFY status ENUM('a','b','c') NOT NULL, "
            "ADD COLUMN price DECIMAL(8,2) FIRST"
        )
        db.execute("INSERT INTO items VALUES (1.25, 6, 'six', 'si', 'c', 'x,y')")
        db.execute("UPDATE items SET title = 'uno', status = 'c' WHERE id = 1")
        db.execute("DELETE FROM items WHERE id = 2")

        p.start()
        p.run_until(lambda: 6 in p.state(topic), "row 6 in the log")
        p.run_until(lambda: 2 not in p.state(topic), "the delete of row 2 in the log")
        events = by_id(p, topic)
    finally:
        p.close()

    assert events[1][0]["after"] == {
        "id": 1, "name": "one", "status": "b", "tags": ["y"], "qty": 4000000000,
    }  # fmt: skip
    assert events[2][0]["after"] == {
        "id": 2, "name": "two", "status": "a", "tags": ["x", "y"], "qty": 7,
    }  # fmt: skip
    assert events[3][0]["after"] == {
        "id": 3, "note": "three", "name": "tri", "status": "b", "tags": [], "qty": 9,
    }  # fmt: skip
    assert events[4][0]["after"] == {
        "id": 4, "note": "four", "name": "fo", "status": "a", "tags": ["y"], "qty": 1,
    }  # fmt: skip
    assert events[5][0]["after"] == {
        "id": 5, "note": "five", "title": "fi", "status": "b", "tags": ["x"],
    }  # fmt: skip
    assert events[6][0]["after"] == {
        "price": "1.25", "id": 6, "note": "six", "title": "si", "status": "c", "tags": ["x", "y"],
    }  # fmt: skip
    update = events[1][-1]
    assert update["op"] == "u"
    assert update["before"] == {
        "price": None, "id": 1, "note": "n", "title": "one", "status": "b", "tags": ["y"],
    }  # fmt: skip
    assert update["after"]["title"] == "uno" and update["after"]["status"] == "c"
    assert events[2][-1]["op"] == "d" and events[2][-1]["before"]["title"] == "two"
