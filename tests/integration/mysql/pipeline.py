"""Test helpers: a database handle and a source-into-log pipeline that works like the hub's
source worker (poll, append records and checkpoint atomically, then ``committed``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pymysql

from connectors.source.mysql.source import MySqlSource, MySqlSourceConfig
from tests.fixtures.services import MariaDBServer
from tests.integration.source_pipeline import DEADLINE_S, SourcePipeline, wait_until

__all__ = ["DEADLINE_S", "Database", "Pipeline", "config", "wait_until"]


@dataclass
class Database:
    server: MariaDBServer
    name: str | None
    user: str | None = None
    password: str | None = None
    _conn: Any = field(default=None, repr=False)

    @classmethod
    def root(cls, server: MariaDBServer) -> Database:
        return cls(server=server, name=None, user="root", password="root")

    @property
    def conn(self) -> Any:
        if self._conn is None or not self._conn.open:
            self._conn = pymysql.connect(
                host=self.server.host,
                port=self.server.port,
                user=self.user or self.server.user,
                password=self.password or self.server.password,
                database=self.name,
                charset="utf8mb4",
                autocommit=True,
            )
            with self._conn.cursor() as cur:
                cur.execute("SET SESSION time_zone = '+00:00'")
        return self._conn

    def grant(self) -> None:
        """Give the capture user its database (again: a restart of the service resets it)."""
        root = Database.root(self.server)
        root.execute(f"GRANT ALL PRIVILEGES ON `{self.name}`.* TO '{self.server.user}'@'%'")
        root.close()

    def execute(self, sql: str, args: Any = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)

    def executemany(self, sql: str, args: Any) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql, args)

    def rows(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def close(self) -> None:
        if self._conn is not None and self._conn.open:
            self._conn.close()


def config(db: Database, name: str = "shop", **overrides: Any) -> MySqlSourceConfig:
    values: dict[str, Any] = {
        "name": name,
        "type": "mariadb",
        "url": f"mysql://{db.server.user}:{db.server.password}@{db.server.host}:{db.server.port}/",
        "databases": [db.name],
        "heartbeat_interval": "1s",
        "reconnect_timeout": "60s",
    }
    values.update(overrides)
    return MySqlSourceConfig(**values)


class Pipeline(SourcePipeline[MySqlSource, MySqlSourceConfig]):
    """The MySQL source writing into an embedded log in ``log_dir``."""

    source_class = MySqlSource

    @staticmethod
    def config_placeholder(db: Database) -> MySqlSourceConfig:
        """A config for a pipeline only used to read a log back."""
        return config(db)

    def topic(self, db: Database, table: str) -> str:
        return f"{self.config.name}.{db.name}.{table}"

    def state(self, topic: str) -> dict[Any, dict[str, Any]]:
        """The table rebuilt from the log: first key value -> row."""
        rows: dict[Any, dict[str, Any]] = {}
        for key, value in self.records(topic):
            k = None if key is None else next(iter(orjson.loads(key).values()))
            if value is None or value["op"] == "d":
                rows.pop(k, None)
            else:
                rows[k] = value["after"]
        return rows
