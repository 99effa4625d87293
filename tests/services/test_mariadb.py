"""services/run and MariaDB: logins, binlog settings for CDC, a real binlog stream."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest
from pymysql.connections import Connection
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import WriteRowsEvent

from tests.fixtures.services import MariaDBServer

pytestmark = pytest.mark.integration


@pytest.fixture
def conn(mariadb: MariaDBServer) -> Iterator[Connection[pymysql.cursors.Cursor]]:
    connection = pymysql.connect(
        host=mariadb.host,
        port=mariadb.port,
        user=mariadb.user,
        password=mariadb.password,
        database=mariadb.database,
        autocommit=True,
    )
    yield connection
    connection.close()


def test_binlog_is_row_based_with_full_images_and_metadata(
    conn: Connection[pymysql.cursors.Cursor],
) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata")
        assert cur.fetchone() == (1, "ROW", "FULL", "FULL")


def test_no_anonymous_user_is_left(mariadb: MariaDBServer) -> None:
    root = pymysql.connect(host=mariadb.host, port=mariadb.port, user="root", password="root")
    with root, root.cursor() as cur:
        cur.execute("SELECT count(*) FROM mysql.user WHERE user = ''")
        assert cur.fetchone() == (0,)


def test_wrong_password_is_refused(mariadb: MariaDBServer) -> None:
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        pymysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user, password="nope")


# mysql-replication opens its schema connection with PyMySQL's deprecated ``db=`` argument.
@pytest.mark.filterwarnings("ignore:'db' is deprecated:DeprecationWarning")
def test_user_streams_row_events_with_column_names_by_gtid(
    mariadb: MariaDBServer, conn: Connection[pymysql.cursors.Cursor]
) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT @@gtid_current_pos")
        (start,) = cur.fetchone() or ("",)
        cur.execute("CREATE TABLE services_stream (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute("INSERT INTO services_stream VALUES (1, 'first'), (2, 'second')")
    stream = BinLogStreamReader(
        connection_settings={
            "host": mariadb.host,
            "port": mariadb.port,
            "user": mariadb.user,
            "password": mariadb.password,
        },
        server_id=4242,
        is_mariadb=True,
        auto_position=start,
        blocking=False,
        only_events=[WriteRowsEvent],
        only_tables=["services_stream"],
    )
    try:
        rows = [row["values"] for event in stream for row in event.rows]
    finally:
        stream.close()
    assert rows == [{"id": 1, "name": "first"}, {"id": 2, "name": "second"}]
