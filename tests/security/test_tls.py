"""TLS to the databases, against real servers started with a throw-away CA (``up --tls``).

With ``tls: {ca: …}`` a source connects encrypted and verifies the server: every connection
it opens (catalog, snapshot, replication stream) is TLS; a certificate from another CA is
refused with an error that says so; a server without TLS is an error, never a silent
fallback to plain text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pymysql
import pytest

from hub.config import load_pipeline
from hub.runtime import Hub
from tests.fixtures.services import MariaDBServer, PostgresServer, ServiceFactory
from tests.security.hubs import status, wait_for

pytestmark = pytest.mark.integration

ROWS = 200


@pytest.fixture(scope="module")
def pg_tls(start_service: ServiceFactory) -> PostgresServer:
    server = start_service("postgres", "--tls")
    assert isinstance(server, PostgresServer)
    return server


@pytest.fixture(scope="module")
def mariadb_tls(start_service: ServiceFactory) -> MariaDBServer:
    server = start_service("mariadb", "--tls")
    assert isinstance(server, MariaDBServer)
    # Plain-text logins are refused from here on: a source that works used TLS.
    with pymysql.connect(host=server.host, port=server.port, user="root", password="root",
                         ssl_ca=server.facts["TLS_CA"]) as conn, conn.cursor() as cur:
        cur.execute(f"ALTER USER '{server.user}'@'%' REQUIRE SSL")
    return server


@contextmanager
def run_hub(tmp_path: Path, source: str) -> Iterator[Hub]:
    (tmp_path / "p.yaml").write_text(
        f"log: {{path: {tmp_path / 'log'}}}\napi: {{enabled: false}}\nsources:\n  - {source}\n"
    )
    hub = Hub(load_pipeline(tmp_path / "p.yaml", env={}))
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def wait_for_error(hub: Hub, name: str, *words: str) -> str:
    """The connector's error once it names all ``words`` (FAILED, or retrying with it)."""
    def seen() -> bool:
        error = status(hub, name).error or ""
        return all(w in error for w in words)

    wait_for(seen, f"{name}'s error to mention {words} (last: {status(hub, name).error!r})")
    return status(hub, name).error or ""


# -- Postgres ---------------------------------------------------------------------------------


@pytest.fixture
def pg_table(pg_tls: PostgresServer) -> Iterator[str]:
    with psycopg.connect(pg_tls.superuser_dsn, autocommit=True) as su:
        for slot in su.execute("SELECT slot_name FROM pg_replication_slots").fetchall():
            su.execute("SELECT pg_drop_replication_slot(%s)", slot)
    with psycopg.connect(pg_tls.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, %s) g",
                     (ROWS,))
    yield "public.items"


def _pg_source(dsn: str, tls: str) -> str:
    return (f'{{name: shop, type: postgres, dsn: "{dsn}", tables: [public.items], '
            f"heartbeat_interval: 500ms{tls}}}")


def test_postgres_source_connects_with_tls_and_verifies_the_server(
    pg_tls: PostgresServer, pg_table: str, tmp_path: Path
) -> None:
    ca = pg_tls.facts["TLS_CA"]
    with run_hub(tmp_path, _pg_source(pg_tls.dsn, f", tls: {{ca: {ca}}}")) as hub:
        wait_for(lambda: status(hub, "shop").records >= ROWS, "the snapshot")
        with psycopg.connect(pg_tls.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO items VALUES (%s, 'streamed')", (ROWS + 1,))
        wait_for(lambda: status(hub, "shop").records >= ROWS + 1, "the streamed insert")
        with psycopg.connect(pg_tls.superuser_dsn) as su:
            connections = su.execute(
                "SELECT a.backend_type, s.ssl, s.version FROM pg_stat_activity a "
                "JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'changehub%'"
            ).fetchall()
        kinds = {kind for kind, _, _ in connections}
        assert "walsender" in kinds, connections  # the replication stream itself
        assert all(ssl for _, ssl, _ in connections), connections


def test_postgres_source_refuses_a_certificate_from_another_ca(
    pg_tls: PostgresServer, pg_table: str, tmp_path: Path
) -> None:
    other = pg_tls.facts["TLS_OTHER_CA"]
    with run_hub(tmp_path, _pg_source(pg_tls.dsn, f", tls: {{ca: {other}}}")) as hub:
        error = wait_for_error(hub, "shop", "certificate verify failed")
        assert status(hub, "shop").records == 0
        assert pg_tls.password not in error


def test_postgres_source_with_tls_refuses_a_server_without_it(
    postgres: PostgresServer, pg_tls: PostgresServer, tmp_path: Path
) -> None:
    ca = pg_tls.facts["TLS_CA"]
    with run_hub(tmp_path, _pg_source(postgres.dsn, f", tls: {{ca: {ca}}}")) as hub:
        wait_for_error(hub, "shop", "does not support SSL")
        assert status(hub, "shop").records == 0


# -- MariaDB ----------------------------------------------------------------------------------


@pytest.fixture
def mysql_table(mariadb_tls: MariaDBServer) -> str:
    with pymysql.connect(host=mariadb_tls.host, port=mariadb_tls.port, user="root",
                         password="root", database=mariadb_tls.database,
                         ssl_ca=mariadb_tls.facts["TLS_CA"], autocommit=True) as conn, \
            conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS items")
        cur.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        cur.executemany("INSERT INTO items VALUES (%s, %s)",
                        [(i, f"item {i}") for i in range(1, ROWS + 1)])
    return f"{mariadb_tls.database}.items"


def _mysql_source(server: MariaDBServer, table: str, ca: str) -> str:
    return (f'{{name: shop, type: mariadb, url: "{server.url}", tables: [{table}], '
            f"heartbeat_interval: 500ms, reconnect_timeout: 0s, tls: {{ca: {ca}}}}}")


def test_mariadb_source_streams_over_tls_to_a_server_that_requires_it(
    mariadb_tls: MariaDBServer, mysql_table: str, tmp_path: Path
) -> None:
    source = _mysql_source(mariadb_tls, mysql_table, mariadb_tls.facts["TLS_CA"])
    with run_hub(tmp_path, source) as hub:
        wait_for(lambda: status(hub, "shop").records >= ROWS, "the snapshot")
        with pymysql.connect(host=mariadb_tls.host, port=mariadb_tls.port,
                             user=mariadb_tls.user, password=mariadb_tls.password,
                             database=mariadb_tls.database, autocommit=True,
                             ssl_ca=mariadb_tls.facts["TLS_CA"]) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (%s, 'streamed')", (ROWS + 1,))
        wait_for(lambda: status(hub, "shop").records >= ROWS + 1, "the binlog insert")


def test_mariadb_source_refuses_a_certificate_from_another_ca(
    mariadb_tls: MariaDBServer, mysql_table: str, tmp_path: Path
) -> None:
    source = _mysql_source(mariadb_tls, mysql_table, mariadb_tls.facts["TLS_OTHER_CA"])
    with run_hub(tmp_path, source) as hub:
        error = wait_for_error(hub, "shop", "CERTIFICATE_VERIFY_FAILED")
        assert status(hub, "shop").records == 0
        assert mariadb_tls.password not in error
