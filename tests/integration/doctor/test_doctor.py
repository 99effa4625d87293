"""``changehub doctor`` through the CLI against real systems set up wrong: a Postgres role
without REPLICATION, a SQL target refusing the password, a search engine where nothing
listens, a SQL source whose table is missing — each reported with its fix, exit code 1 —
and a pipeline whose systems are ready: exit code 0."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.fixtures.services import PostgresServer

ROOT = Path(__file__).resolve().parents[3]


def doctor(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "hub.cli", "doctor", "-c", "pipeline.yaml"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def weak_role(postgres: PostgresServer) -> Iterator[tuple[str, str]]:
    """A login role without REPLICATION, owning a table in a database of its own."""
    role = f"weak_{uuid.uuid4().hex[:8]}"
    password = "weak-pw-4567"
    with psycopg.connect(postgres.superuser_dsn, autocommit=True) as su:
        su.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        su.execute(f"CREATE DATABASE {role} OWNER {role}")
    dsn = make_conninfo(postgres.dsn, user=role, password=password, dbname=role)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text)")
    try:
        yield role, dsn
    finally:
        with psycopg.connect(postgres.superuser_dsn, autocommit=True) as su:
            su.execute(f"DROP DATABASE IF EXISTS {role} WITH (FORCE)")
            su.execute(f"DROP ROLE IF EXISTS {role}")


def _url(dsn: str, password: str | None = None) -> str:
    p = conninfo_to_dict(dsn)
    pw = password if password is not None else p["password"]
    return f"postgresql+psycopg://{p['user']}:{pw}@{p['host']}:{p['port']}/{p['dbname']}"


def test_every_misconfigured_system_is_reported_with_its_fix(
    tmp_path: Path, weak_role: tuple[str, str]
) -> None:
    role, dsn = weak_role
    sqlite3.connect(tmp_path / "legacy.db").close()
    (tmp_path / "pipeline.yaml").write_text(f"""
log: {{path: ./log}}
api: {{enabled: false}}
sources:
  - {{name: shop, type: postgres, dsn: "{dsn}", tables: [public.orders]}}
  - {{name: legacy, type: sql_poll, url: "sqlite:///./legacy.db", table: orders,
     mode: incrementing, incrementing_column: id}}
sinks:
  - {{name: warehouse, type: sql, topics: ["shop.*"], url: "{_url(dsn, 'wrong-pw-999')}"}}
  - {{name: search, type: opensearch, topics: ["shop.*"], hosts: ["http://127.0.0.1:9"]}}
  - {{name: files, type: batch, topics: ["shop.*"], path: ./exports}}
""")
    result = doctor(tmp_path)
    text = " ".join(result.stdout.split())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "source shop (postgres)" in text
    assert f'fix: as a superuser run ALTER ROLE "{role}" REPLICATION;' in text
    assert "source legacy (sql_poll)" in text
    assert "orders does not exist in" in text and "fix: create the table" in text
    assert not (tmp_path / "legacy.db-journal").exists()
    assert "sink warehouse (sql)" in text
    assert "fix: check the user and password in url" in text
    assert "wrong-pw-999" not in result.stdout + result.stderr
    assert "sink search (opensearch)" in text
    assert "127.0.0.1:9" in text and "fix: check hosts, that the engine runs" in text
    assert "sink files (batch)" in text and "will be created under" in text
    assert "problem(s) to fix" in result.stderr


def test_a_missing_table_of_a_polled_server_is_reported(
    tmp_path: Path, weak_role: tuple[str, str]
) -> None:
    _, dsn = weak_role
    (tmp_path / "pipeline.yaml").write_text(f"""
api: {{enabled: false}}
sources:
  - {{name: legacy, type: sql_poll, url: "{_url(dsn)}", table: public.missing,
     mode: incrementing, incrementing_column: id}}
""")
    result = doctor(tmp_path)
    text = " ".join(result.stdout.split())
    assert result.returncode == 1, text
    assert "accepts the credentials" in text
    assert "public.missing does not exist" in text
    assert "fix: create the table, or fix `table`" in text


def test_a_pipeline_whose_systems_are_ready_passes(
    tmp_path: Path, weak_role: tuple[str, str]
) -> None:
    _, dsn = weak_role
    (tmp_path / "pipeline.yaml").write_text(f"""
log: {{path: ./log}}
sources:
  - {{name: legacy, type: sql_poll, url: "{_url(dsn)}", table: public.orders,
     mode: incrementing, incrementing_column: id}}
sinks:
  - {{name: warehouse, type: sql, topics: ["legacy.*"], url: "{_url(dsn)}"}}
  - {{name: files, type: batch, topics: ["legacy.*"], path: ./exports}}
""")
    result = doctor(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems found" in result.stdout
