"""``changehub doctor`` for Postgres, against real servers set up right and wrong."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from connectors.source.postgres.doctor import Finding, diagnose
from tests.fixtures.services import PostgresServer, ServiceFactory
from tests.integration.postgres.conftest import _database
from tests.integration.postgres.pipeline import Database, config

pytestmark = pytest.mark.integration


def errors(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings if f.level == "error"}


@pytest.fixture
def items(db: Database) -> Database:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, body text)")
    return db


def test_a_database_set_up_right_has_no_errors(items: Database) -> None:
    findings = diagnose(config(items))
    assert errors(findings) == {}
    checks = {f.check for f in findings}
    assert {
        "wal_level",
        "REPLICATION privilege",
        "replication connection",
        "free replication slots",
        "publication",
        "table public.items",
    } <= checks
    # A text column under REPLICA IDENTITY DEFAULT: a warning with the fix.
    (warning,) = [f for f in findings if f.level == "warning"]
    assert "body" in warning.message and "REPLICA IDENTITY FULL" in (warning.fix or "")


def test_a_role_without_replication_gets_the_alter_role(items: Database) -> None:
    role = f"norep_{uuid.uuid4().hex[:6]}"
    items.superuser(f"CREATE ROLE {role} LOGIN PASSWORD 'pw12345'")
    items.superuser(f"GRANT ALL ON SCHEMA public TO {role}; GRANT SELECT ON items TO {role}")
    try:
        dsn = make_conninfo(items.dsn, user=role, password="pw12345")
        found = errors(diagnose(config(items, dsn=dsn)))
        assert f'ALTER ROLE "{role}" REPLICATION' in (found["REPLICATION privilege"].fix or "")
        assert f'ALTER ROLE "{role}" REPLICATION' in (found["replication connection"].fix or "")
        assert "cannot create it" in found["publication"].message
    finally:
        items.superuser(f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_a_publication_of_someone_else_lacking_tables_names_its_owner(items: Database) -> None:
    items.execute("CREATE TABLE other (id int PRIMARY KEY)")
    items.superuser("CREATE ROLE pubowner_x NOLOGIN")
    items.superuser("ALTER TABLE other OWNER TO pubowner_x")
    items.superuser("CREATE PUBLICATION changehub_shop FOR TABLE other")
    items.superuser("ALTER PUBLICATION changehub_shop OWNER TO pubowner_x")
    try:
        finding = errors(diagnose(config(items)))["publication"]
        assert "belongs to pubowner_x and lacks public.items" in finding.message
        assert "ALTER PUBLICATION changehub_shop ADD TABLE public.items" in (finding.fix or "")
    finally:
        items.superuser("DROP PUBLICATION changehub_shop; DROP TABLE other; DROP ROLE pubowner_x")


def test_tables_missing_or_without_key_are_errors(items: Database) -> None:
    items.execute("CREATE TABLE nokey (v int)")
    found = errors(diagnose(config(items, tables=["public.items", "public.nokey", "public.gone"])))
    assert "no primary key" in found["table public.nokey"].message
    assert "does not exist" in found["table public.gone"].message


def test_a_slot_of_another_plugin_is_an_error(items: Database) -> None:
    items.execute("SELECT pg_create_logical_replication_slot('changehub_shop', 'test_decoding')")
    finding = errors(diagnose(config(items)))["replication slot"]
    assert "not a logical pgoutput slot" in finding.message
    assert "pg_drop_replication_slot('changehub_shop')" in (finding.fix or "")


@pytest.fixture
def misconfigured(start_service: ServiceFactory) -> Iterator[tuple[PostgresServer, Database]]:
    """A server with wal_level=replica and every replication slot taken."""
    server = start_service("postgres")
    assert isinstance(server, PostgresServer)
    with psycopg.connect(server.superuser_dsn, autocommit=True) as su:
        su.execute("ALTER SYSTEM SET wal_level = replica")
        su.execute("ALTER SYSTEM SET max_replication_slots = 1")
    server.stop()
    server = server.start()
    with psycopg.connect(server.superuser_dsn, autocommit=True) as su:
        su.execute("SELECT pg_create_physical_replication_slot('someone_elses')")
    for db in _database(server, server.dsn):
        yield server, db


def test_wal_level_and_full_slots_get_their_fixes(
    misconfigured: tuple[PostgresServer, Database],
) -> None:
    _, db = misconfigured
    db.execute("CREATE TABLE items (id int PRIMARY KEY)")
    found = errors(diagnose(config(db)))
    assert found["wal_level"].message == "is replica, must be logical"
    assert "ALTER SYSTEM SET wal_level = logical" in (found["wal_level"].fix or "")
    assert "restart" in (found["wal_level"].fix or "")
    slots = found["free replication slots"]
    assert "all 1 slots are taken" in slots.message
    assert "pg_drop_replication_slot('someone_elses')" in (slots.fix or "")


def test_an_unreachable_server_is_one_finding() -> None:
    findings = diagnose(config(Database("x", "postgresql://u:secretpw@127.0.0.1:1/x", "", "u")))
    assert [f.check for f in findings] == ["connection"]
    assert "secretpw" not in str(findings[0])
