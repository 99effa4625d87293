"""Fixtures for the Postgres source's integration tests: a fresh database per test on the
session's real server, and a pipeline that runs the source into a real embedded log the way
the hub does (poll -> atomic checkpointed append -> committed)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.fixtures.services import PostgresServer
from tests.integration.postgres.pipeline import Database

pytestmark = pytest.mark.integration


def _database(server: PostgresServer, dsn_of_server: str) -> Iterator[Database]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.superuser_dsn, autocommit=True) as su:
        su.execute(f'CREATE DATABASE "{name}" OWNER {server.user}')
    params = conninfo_to_dict(dsn_of_server)
    dsn = make_conninfo(dsn_of_server, dbname=name)
    superuser = make_conninfo(server.superuser_dsn, dbname=name)
    db = Database(name=name, dsn=dsn, superuser_dsn=superuser, user=str(params["user"]))
    try:
        yield db
    finally:
        db.close()
        with psycopg.connect(server.superuser_dsn, autocommit=True) as su:
            su.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            su.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE database = %s AND NOT active",
                (name,),
            )
            su.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(postgres: PostgresServer) -> Iterator[Database]:
    """A new, empty database owned by the application role, dropped afterwards."""
    yield from _database(postgres, postgres.dsn)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "log"
