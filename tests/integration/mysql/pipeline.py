"""Test helpers: a database handle and a source-into-log pipeline that works like the hub's
source worker (poll, append records and checkpoint atomically, then ``committed``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pymysql

from connectors.api import ConnectorContext, SourceBatch
from connectors.envelope import decode_value
from connectors.source.mysql.source import MySqlSource, MySqlSourceConfig
from hub.source_worker import route
from log.api import Log, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog
from tests.fixtures.services import MariaDBServer

DEADLINE_S = 30.0


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


def wait_until(
    condition: Callable[[], bool],
    what: str,
    deadline_s: float = DEADLINE_S,
    step: Callable[[], object] | None = None,
) -> None:
    """Call ``step`` (which blocks on real work) until ``condition`` holds, or fail."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        if step is not None:
            step()
        else:
            time.sleep(0.05)  # nothing to block on: a condition polled with a deadline


class Pipeline:
    """One source writing into an embedded log in ``log_dir``, driven from the test thread."""

    def __init__(self, log_dir: Path, config: MySqlSourceConfig, *, log: Log | None = None):
        self.config = config
        self.log = log if log is not None else EmbeddedLog(log_dir)
        self._owns_log = log is None
        self.source: MySqlSource | None = None
        self.batches = 0

    def _ensure_topic(self, topic: str) -> int:
        self.log.create_topic(topic, TopicConfig(partitions=1))
        return 1

    def start(self) -> MySqlSource:
        context = ConnectorContext(
            name=self.config.name,
            log=self.log,
            data_dir=Path("/nonexistent"),
            logger=logging.getLogger(f"test.{self.config.name}"),
            topic_partitions=self._ensure_topic,
        )
        self.source = MySqlSource(self.config, context)
        self.source.start(self.log.last_checkpoint(self.config.name))
        for topic in self.source.topics():
            self._ensure_topic(topic)
        return self.source

    def step(self, timeout: float = 0.2) -> SourceBatch | None:
        assert self.source is not None
        batch = self.source.poll(timeout)
        if batch is None:
            return None
        writes = route(batch.records, self._ensure_topic)
        self.log.append_checkpointed(self.config.name, writes, batch.checkpoint)
        self.source.committed(batch.checkpoint)
        self.batches += 1
        return batch

    def run_until(
        self, condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S
    ) -> None:
        wait_until(condition, what, deadline_s, step=self.step)

    def stop(self) -> None:
        if self.source is not None:
            self.source.stop()
            self.source = None

    def close(self) -> None:
        self.stop()
        if self._owns_log:
            self.log.close()

    @staticmethod
    def config_placeholder(db: Database) -> MySqlSourceConfig:
        """A config for a pipeline only used to read a log back."""
        return config(db)

    def topic(self, db: Database, table: str) -> str:
        return f"{self.config.name}.{db.name}.{table}"

    # -- reading the log back -----------------------------------------------------------------

    def records(self, topic: str) -> list[tuple[bytes | None, dict[str, Any] | None]]:
        """(key, envelope or None for a tombstone) of every record of ``topic``, in order."""
        if topic not in self.log.list_topics():
            return []
        tp = TopicPartition(topic, 0)
        out: list[tuple[bytes | None, dict[str, Any] | None]] = []
        offset = self.log.start_offset(tp)
        end = self.log.end_offset(tp)
        while offset < end:
            batch = self.log.read(tp, offset)
            out.extend((r.key, decode_value(r.value)) for r in batch)
            offset = batch[-1].offset + 1
        return out

    def events(self, topic: str) -> list[dict[str, Any]]:
        return [v for _, v in self.records(topic) if v is not None]

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
