"""``changehub snapshot`` for a MySQL source, end to end: a real hub (``changehub run``) with
a MariaDB source reads a table again when asked from another process (through the hub's
API and the binlog's signal table); a table it does not capture is refused."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.api.conftest import wait_for
from tests.integration.api.test_cli import RunningCli, cli, free_port
from tests.integration.mysql.pipeline import Database

pytestmark = pytest.mark.integration

ROWS = 300


def test_snapshot_through_the_cli_reads_the_table_again(db: Database, tmp_path: Path) -> None:
    db.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
    db.executemany("INSERT INTO items VALUES (%s, %s)", [(i, f"item {i}") for i in range(ROWS)])
    s = db.server
    port = free_port()
    (tmp_path / "pipeline.yaml").write_text(f"""
log: {{backend: embedded, path: ./log}}
api: {{listen: "127.0.0.1:{port}"}}
sources:
  - {{name: shop, type: mariadb, url: "mysql://{s.user}:{s.password}@{s.host}:{s.port}/",
     databases: ["{db.name}"], heartbeat_interval: 500ms, snapshot_chunk_size: 100}}
""")

    def items_in_log() -> int:
        topics = httpx.get(f"http://127.0.0.1:{port}/topics").json()
        return sum(t["records"] for t in topics if t["name"] == f"shop.{db.name}.items")

    running = RunningCli(tmp_path)
    try:
        wait_for(lambda: "API and status page on" in running.log(), timeout=60,
                 what="the hub's API up")  # fmt: skip
        wait_for(lambda: items_in_log() == ROWS, timeout=60, what="the initial snapshot")

        bad = cli(tmp_path, "snapshot", "shop", "--table", "other.items", "-c", "pipeline.yaml")
        assert bad.returncode == 2
        assert "does not capture other.items" in " ".join(bad.stderr.split())

        done = cli(tmp_path, "snapshot", "shop", "--table", f"{db.name}.items", "-c",
                   "pipeline.yaml")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"incremental snapshot of {db.name}.items requested" in done.stdout
        wait_for(lambda: items_in_log() >= 2 * ROWS, timeout=60,
                 what="the table read again into the log")  # fmt: skip
    finally:
        assert running.stop() == 0, running.log()
    # The signal table is no topic of the source.
    assert not any("changehub_signal" in p.name for p in (tmp_path / "log").rglob("*"))
