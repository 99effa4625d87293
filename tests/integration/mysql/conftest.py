"""Fixtures for the MySQL source's integration tests: a fresh database per test on the
session's real MariaDB, and a pipeline that runs the source into a real embedded log the way
the hub does (poll -> atomic checkpointed append -> committed)."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.fixtures.services import MariaDBServer
from tests.integration.mysql.pipeline import Database

pytestmark = pytest.mark.integration


def make_database(server: MariaDBServer) -> Generator[Database, None, None]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    root = Database.root(server)
    root.execute(f"CREATE DATABASE `{name}` DEFAULT CHARACTER SET utf8mb4")
    root.close()
    db = Database(server=server, name=name)
    db.grant()
    try:
        yield db
    finally:
        db.close()
        root = Database.root(server)  # a new connection: the server may have restarted
        root.execute(f"DROP DATABASE IF EXISTS `{name}`")
        root.close()


@pytest.fixture
def db(mariadb: MariaDBServer) -> Iterator[Database]:
    """A new, empty database the capture user owns, dropped afterwards."""
    yield from make_database(mariadb)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "log"
