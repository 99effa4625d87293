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
import psycopg

from connectors.api import ConnectorContext, SourceBatch
from connectors.envelope import decode_value
from connectors.source.postgres.source import PostgresSource, PostgresSourceConfig
from hub.source_worker import route
from log.api import Log, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

DEADLINE_S = 30.0


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

    def __init__(
        self, log_dir: Path, config: PostgresSourceConfig, *, log: Log | None = None
    ) -> None:
        self.config = config
        self.log = log if log is not None else EmbeddedLog(log_dir)
        self._owns_log = log is None
        self.source: PostgresSource | None = None
        self.batches = 0

    def _ensure_topic(self, topic: str) -> int:
        self.log.create_topic(topic, TopicConfig(partitions=1))
        return 1

    def start(self) -> PostgresSource:
        context = ConnectorContext(
            name=self.config.name,
            log=self.log,
            data_dir=Path("/nonexistent"),
            logger=logging.getLogger(f"test.{self.config.name}"),
            topic_partitions=self._ensure_topic,
        )
        self.source = PostgresSource(self.config, context)
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
        """The table rebuilt from the log: key -> row."""
        rows: dict[Any, dict[str, Any]] = {}
        for key, value in self.records(topic):
            k = None if key is None else orjson.loads(key)
            k = (
                tuple(k.values())
                if isinstance(k, dict) and len(k) > 1
                else (next(iter(k.values())) if isinstance(k, dict) else k)
            )
            if value is None:
                rows.pop(k, None)
            elif value["op"] == "t":
                rows.clear()
            elif value["op"] == "d":
                rows.pop(k, None)
            else:
                rows[k] = value["after"]
        return rows


def table_state(db: Database, query: str) -> dict[Any, dict[str, Any]]:
    """Rows of ``query`` (first column the key) as key -> {column: value}."""
    cur = db.conn.execute(query)
    names = [d.name for d in cur.description or ()]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
