"""services/run and PostgreSQL: a real server, logins, replication, the life cycle."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from services.process import free_port
from tests.fixtures.services import PostgresServer
from tests.services.helpers import parse_facts, run

pytestmark = pytest.mark.integration


@pytest.fixture
def private_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="changehub-test-pg-"))
    yield directory
    assert run("down", "postgres", "--dir", directory).returncode == 0
    shutil.rmtree(directory)


def test_dsn_logs_in_with_the_password_and_sees_logical_wal(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.dsn) as conn:
        row = conn.execute(
            "SELECT 1, current_user, current_database(), current_setting('wal_level')"
        ).fetchone()
    assert row == (1, "changehub", "changehub", "logical")


def test_wrong_password_is_refused(postgres: PostgresServer) -> None:
    bad = postgres.dsn.replace(f":{postgres.password}@", ":not-the-password@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad)


def test_dsn_opens_a_logical_replication_connection_and_a_slot(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.dsn, replication="database", autocommit=True) as conn:
        result = conn.pgconn.exec_(
            b"CREATE_REPLICATION_SLOT services_test TEMPORARY LOGICAL pgoutput"
        )
        assert result.status == psycopg.pq.ExecStatus.TUPLES_OK, result.error_message
        assert result.get_value(0, 0) == b"services_test"


def test_superuser_dsn_is_a_superuser(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.superuser_dsn) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (True,)


def test_up_again_reports_the_running_server_instead_of_starting_another(
    private_dir: Path,
) -> None:
    first = run("up", "postgres", "--dir", private_dir)
    assert first.returncode == 0, first.stderr
    second = run("up", "postgres", "--dir", private_dir)
    assert second.returncode == 0, second.stderr
    assert parse_facts(second.stdout) == parse_facts(first.stdout)


def test_down_stops_it_keeps_the_data_and_up_restarts_on_the_same_port(
    private_dir: Path,
) -> None:
    facts = parse_facts(run("up", "postgres", "--dir", private_dir).stdout)
    with psycopg.connect(facts["PG_DSN"], autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int)")

    assert run("down", "postgres", "--dir", private_dir).returncode == 0
    status = run("status", "postgres", "--dir", private_dir)
    assert (status.returncode, status.stdout.strip()) == (3, "STATUS=stopped")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(facts["PG_DSN"], connect_timeout=2)
    assert run("down", "postgres", "--dir", private_dir).returncode == 0

    again = run("up", "postgres", "--dir", private_dir)
    assert again.returncode == 0, again.stderr
    assert parse_facts(again.stdout)["PG_PORT"] == facts["PG_PORT"]
    with psycopg.connect(facts["PG_DSN"]) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


def test_port_option_is_honoured(private_dir: Path) -> None:
    port = free_port()
    result = run("up", "postgres", "--dir", private_dir, "--port", str(port))
    assert result.returncode == 0, result.stderr
    assert parse_facts(result.stdout)["PG_PORT"] == str(port)
    status = run("status", "postgres", "--dir", private_dir)
    assert status.returncode == 0
    assert f"PG_PORT={port}" in status.stdout.splitlines()


def test_restart_moves_to_a_free_port_when_the_old_one_was_taken(private_dir: Path) -> None:
    old = parse_facts(run("up", "postgres", "--dir", private_dir).stdout)["PG_PORT"]
    assert run("down", "postgres", "--dir", private_dir).returncode == 0
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(old)))
        squatter.listen()
        again = run("up", "postgres", "--dir", private_dir)
    assert again.returncode == 0, again.stderr
    facts = parse_facts(again.stdout)
    assert facts["PG_PORT"] != old
    with psycopg.connect(facts["PG_DSN"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_asking_for_a_busy_port_is_a_usage_error(private_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run("up", "postgres", "--dir", private_dir, "--port", str(port))
    assert result.returncode == 2
    assert f"port {port} is in use" in result.stderr


def test_up_after_the_server_was_killed_starts_it_again_on_its_data(private_dir: Path) -> None:
    facts = parse_facts(run("up", "postgres", "--dir", private_dir).stdout)
    with psycopg.connect(facts["PG_DSN"], autocommit=True) as conn:
        conn.execute("CREATE TABLE survived (id int)")
    state = json.loads((private_dir / "postgres" / "state.json").read_text())
    os.kill(state["processes"][0]["pid"], signal.SIGKILL)

    again = run("up", "postgres", "--dir", private_dir)
    assert again.returncode == 0, again.stderr
    with psycopg.connect(parse_facts(again.stdout)["PG_DSN"]) as conn:
        assert conn.execute("SELECT count(*) FROM survived").fetchone() == (0,)
