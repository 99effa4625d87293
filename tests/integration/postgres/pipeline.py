"""Test helpers: a database handle and a source-into-log pipeline that works like the hub's
source worker (poll, append records and checkpoint atomically, then ``committed``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from connectors.source.postgres.source import PostgresSource, PostgresSourceConfig
from tests.integration.source_pipeline import DEADLINE_S, SourcePipeline, wait_until

__all__ = ["DEADLINE_S", "Database", "Pipeline", "config", "table_state", "wait_until"]


@dataclass
class Database:
    name: str
    dsn: str
    superuser_dsn: str
    user: str
    _conn: psycopg.Connection[Any] | None = field(default=None, repr=False)

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
        return self._conn

    def execute(self, query: Any, params: Any = None) -> None:
        self.conn.execute(query, params)

    def rows(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(query, params).fetchall()

    def value(self, query: Any, params: Any = None) -> Any:
        row = self.conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]

    def superuser(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.superuser_dsn, autocommit=True) as su:
            cur = su.execute(query, params)
            return cur.fetchall() if cur.description else []

    def slot_confirmed(self, slot: str) -> int | None:
        value = self.value(
            "SELECT (SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots "
            "WHERE slot_name = %s)",
            (slot,),
        )
        return None if value is None else int(value)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def config(db: Database, name: str = "shop", **overrides: Any) -> PostgresSourceConfig:
    values: dict[str, Any] = {
        "name": name,
        "type": "postgres",
        "dsn": db.dsn,
        "tables": ["public.items"],
        "heartbeat_interval": "1s",
        "status_interval": "1s",
    }
    values.update(overrides)
    return PostgresSourceConfig(**values)


class Pipeline(SourcePipeline[PostgresSource, PostgresSourceConfig]):
    """The Postgres source writing into an embedded log in ``log_dir``."""

    source_class = PostgresSource


def table_state(db: Database, query: str) -> dict[Any, dict[str, Any]]:
    """Rows of ``query`` (first column the key) as key -> {column: value}."""
    cur = db.conn.execute(query)
    names = [d.name for d in cur.description or ()]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
