"""SQLAlchemy plumbing shared by sql_poll and the sql sink."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from connectors.sqldb import (
    SharedEngine,
    describe_table,
    engine_for,
    mask_url,
    split_table_name,
    translate,
)
from hub.errors import FatalError, RetriableError


def test_urls_in_messages_have_their_password_hidden() -> None:
    assert mask_url("postgresql://app:hunter2@db/shop") == "postgresql://app:***@db/shop"
    assert mask_url("sqlite:///./x.db") == "sqlite:///./x.db"


def test_a_driver_that_is_not_installed_is_a_fatal_error_with_a_hint() -> None:
    with pytest.raises(FatalError, match=r"driver 'mysql' is not installed.*mysql\+pymysql://"):
        engine_for("mysql://app:hunter2@localhost/shop")


def test_operational_errors_are_retriable_and_others_fatal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn, pytest.raises(sa_exc.SQLAlchemyError) as missing:
            conn.execute(sa.text("SELECT * FROM nowhere"))
    finally:
        engine.dispose()
    # The DBAPI's class decides (SQLite calls a missing table operational), not the text.
    assert isinstance(translate(missing.value, doing="reading", url=url), RetriableError)
    refused = sa_exc.DBAPIError(
        "SELECT 1", None, ConnectionError("refused"), connection_invalidated=True
    )
    assert isinstance(translate(refused, doing="x", url=url), RetriableError)
    programming = sa_exc.ProgrammingError("SELECT", None, Exception("bad syntax"))
    error = translate(programming, doing="polling t", url="postgresql://u:hunter2@h/db")
    assert isinstance(error, FatalError)
    assert str(error) == "polling t on postgresql://u:***@h/db failed: bad syntax"


def test_a_password_echoed_by_the_driver_is_masked() -> None:
    echoed = sa_exc.OperationalError("", None, Exception('auth failed for "hunter2"'))
    error = translate(echoed, doing="connecting", url="postgresql://app:hunter2@db/shop")
    assert "hunter2" not in str(error)


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_describe_table_reads_columns_and_primary_key(kind: str, tmp_path: Path) -> None:
    engine = sa.create_engine(f"{kind}:///{tmp_path / 'x.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "CREATE TABLE t (a BIGINT, b VARCHAR(10), c TIMESTAMP, d DOUBLE PRECISION,"
                " PRIMARY KEY (b, a))"
            ))
            described = describe_table(conn, None, "t")
            assert describe_table(conn, None, "missing") is None
    finally:
        engine.dispose()
    assert described is not None
    assert list(described.columns) == ["a", "b", "c", "d"]
    assert isinstance(described.columns["a"], sa.Integer)
    assert isinstance(described.columns["b"], sa.String)
    assert isinstance(described.columns["c"], sa.DateTime)
    assert isinstance(described.columns["d"], sa.Float)
    assert set(described.primary_key) == {"a", "b"}


def test_schema_qualified_names_split_at_the_last_dot() -> None:
    assert split_table_name("orders") == (None, "orders")
    assert split_table_name("sales.orders") == ("sales", "orders")


def test_a_shared_engine_closed_during_a_call_is_disposed_when_the_call_ends(
    tmp_path: Path,
) -> None:
    shared = SharedEngine(f"sqlite:///{tmp_path / 'x.db'}", "test source")
    inside, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def call() -> None:
        with shared.use() as engine, engine.connect() as conn:
            inside.set()
            release.wait(10)
            outcome.append(conn.execute(sa.text("SELECT 1")).scalar_one())

    worker = threading.Thread(target=call)
    worker.start()
    assert inside.wait(10)
    shared.close()
    shared.close()
    release.set()
    worker.join(10)
    assert outcome == [1]
    with pytest.raises(FatalError, match="test source was stopped"), shared.use():
        pass
