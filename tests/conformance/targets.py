"""Real SQL databases for the conformance tests: a fresh, empty one per test.

SQLite and DuckDB are files in the test's tmp_path. PostgreSQL and MariaDB are the shared
servers of ``tests.fixtures.services``; each test gets its own schema (PostgreSQL, through
``search_path``) or database (MariaDB), so that tables and ``_changehub_offsets`` start empty.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

__all__ = ["SQL_TARGETS", "sql_url"]

SQL_TARGETS = [
    "sqlite",
    "duckdb",
    pytest.param("postgresql", marks=pytest.mark.integration),
    pytest.param("mariadb", marks=pytest.mark.integration),
]


def sql_url(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty database of ``kind``; drop it afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'target.db'}"
    elif kind == "duckdb":
        yield f"duckdb:///{tmp_path / 'target.duckdb'}"
    elif kind == "postgresql":
        server = request.getfixturevalue("postgres")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(server.dsn)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield f"{server.dsn}?options={quote(f'-csearch_path={schema}')}"
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    elif kind == "mariadb":
        server = request.getfixturevalue("mariadb")
        database = f"t_{uuid.uuid4().hex[:12]}"
        root = server.root_url.replace("mysql://", "mysql+pymysql://", 1)
        admin = sa.create_engine(root)
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{database}`"))
            conn.execute(sa.text(f"GRANT ALL ON `{database}`.* TO '{server.user}'@'%'"))
        try:
            base = server.url.replace("mysql://", "mysql+pymysql://", 1)
            yield base.rsplit("/", 1)[0] + f"/{database}"
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP DATABASE `{database}`"))
            admin.dispose()
    else:
        raise AssertionError(f"unknown target {kind}")
