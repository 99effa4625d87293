"""The ``sql_poll`` source: polls any SQL table through SQLAlchemy, as Kafka Connect's JDBC
source does, and emits each new or changed row as a change event.

Every ``interval`` (an APScheduler job, :mod:`.schedule`) a poll cycle starts; it reads
pages of ``batch_size`` rows after the watermark (:mod:`.query`), one page per ``poll()``,
until a page comes back short. Each page is one batch whose checkpoint is the watermark
after its last row, so a restart resumes exactly after the last batch the log stored.

Events are Debezium envelopes keyed by the key columns (the primary key by default).
A poll cannot tell an insert from an update, so:

* ``incrementing`` mode emits ``op: "c"``: a row is seen once, when it appears;
* the timestamp modes emit ``op: "r"`` (a read of the row's current state, as in a
  snapshot) with ``source.snapshot: "false"``: it may be a new row or a changed one.

``before`` is always null. ``source`` carries ``connector: "sql_poll"``, the source name,
``db``, ``schema``, ``table``, ``ts_ms`` (the row's timestamp in the timestamp modes, else
the poll time) and ``watermark`` (the checkpoint after this row). Deletes are invisible to
polling (use a CDC source for them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url

from connectors.api import ConnectorContext, Source, SourceBatch, SourceConfig, SourceRecord
from connectors.envelope import Op, encode_key, event_records, topic_name
from connectors.source.sql_poll.config import SqlPollConfig
from connectors.source.sql_poll.query import now_query, page_query, ties_query, ts_as_compared
from connectors.source.sql_poll.relation import Relation, resolve
from connectors.source.sql_poll.schedule import Ticker
from connectors.source.sql_poll.values import json_row
from connectors.source.sql_poll.watermark import Watermark
from connectors.sqldb import SharedEngine, translate
from hub.errors import ConnectorError, FatalError

__all__ = ["SqlPollSource"]


class SqlPollSource(Source[SqlPollConfig]):
    """See the module doc. ``stop`` may be called from any thread; the rest from one."""

    config_model: ClassVar[type[SourceConfig]] = SqlPollConfig

    def __init__(self, config: SqlPollConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self._topic = config.topic or topic_name(config.name, config.schema_name, config.table_name)
        self._op: Op = "c" if config.mode == "incrementing" else "r"
        self._database = make_url(config.url).database
        self._ticker = Ticker(config.interval, config.name)
        self._stopped = threading.Event()
        self._db: SharedEngine | None = None
        self._relation: Relation | None = None
        self._watermark = Watermark()
        self._paging = False  # inside a poll cycle: the last page was full
        self._upper: datetime | None = None

    def topics(self) -> list[str]:
        return [self._topic]

    def start(self, checkpoint: Mapping[str, Any] | None) -> None:
        self._watermark = Watermark.from_checkpoint(checkpoint, self.config.name)
        self._db = SharedEngine(self.config.url, f"source {self.config.name!r}")
        self._relation = self._resolve()
        self._ticker.start()
        self.context.logger.info(
            "sql_poll %s: polling %s every %d ms (%s mode, key %s) from %s",
            self.config.name,
            self.config.table if self.config.query is None else "a custom query",
            self.config.interval,
            self.config.mode,
            ", ".join(self._relation.key_columns),
            self._watermark.checkpoint() or "the first row",
        )

    def poll(self, timeout: float) -> SourceBatch | None:
        deadline = time.monotonic() + timeout
        while not self._stopped.is_set():
            try:
                if not self._paging:
                    if not self._ticker.wait(deadline - time.monotonic()):
                        return None
                    self._upper = self._upper_bound()
                    self._paging = True
                batch = self._next_page()
            except FatalError:
                if self._stopped.is_set():
                    return None  # stopped from another thread while this poll was running
                raise
            if batch is not None:
                return batch
            if time.monotonic() >= deadline:
                return None
        return None

    def stop(self) -> None:
        self._stopped.set()
        self._ticker.stop()
        if self._db is not None:
            self._db.close()

    # -- reading ----------------------------------------------------------------------------

    def _next_page(self) -> SourceBatch | None:
        relation = self._require_relation()
        limit = self.config.batch_size
        with self._connection() as conn:
            stmt = page_query(relation, self.config.mode, self._watermark, self._upper, limit)
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
            self._paging = len(rows) >= limit
            if self._paging and self.config.mode == "timestamp":
                rows = self._complete_ties(conn, relation, rows)
        if not rows:
            return None
        now_ms = int(time.time() * 1000)
        records: list[SourceRecord] = []
        watermark = self._watermark
        for row in rows:
            watermark = relation.cursor.after(row)
            records += self._events(relation, row, watermark, now_ms)
        self._watermark = watermark
        return SourceBatch(records, watermark.checkpoint())

    def _complete_ties(
        self, conn: Connection, relation: Relation, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Replace the page's trailing run of equal timestamps by the whole run."""
        last = relation.cursor.ts_of(rows[-1])
        last_key = ts_as_compared(relation, last)
        head = [
            r for r in rows if ts_as_compared(relation, relation.cursor.ts_of(r)) != last_key
        ]
        return head + [dict(r._mapping) for r in conn.execute(ties_query(relation, last))]

    def _events(
        self, relation: Relation, row: dict[str, Any], watermark: Watermark, now_ms: int
    ) -> list[SourceRecord]:
        after = json_row(row)
        row_ts = watermark.ts if relation.cursor.timestamp else None
        source = {
            "connector": "sql_poll",
            "name": self.config.name,
            "db": self._database,
            "schema": self.config.schema_name,
            "table": self.config.table_name,
            "ts_ms": _epoch_ms(row_ts) if row_ts is not None else now_ms,
            "snapshot": "false",
            "watermark": watermark.checkpoint(),
        }
        return event_records(
            topic=self._topic,
            key=encode_key(after, relation.key_columns),
            op=self._op,
            before=None,
            after=after,
            source=source,
            ts_ms=now_ms,
        )

    def _upper_bound(self) -> datetime | None:
        """Database now - lag, in the timestamp column's convention (naive columns: UTC)."""
        relation = self._require_relation()
        if relation.cursor.timestamp is None:
            return None
        with self._connection() as conn:
            raw = conn.execute(now_query(conn.dialect.name)).scalar_one()
        now = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
        if relation.timestamp_is_aware:
            now = now if now.tzinfo else now.replace(tzinfo=UTC)
        elif now.tzinfo is not None:
            now = now.astimezone(UTC).replace(tzinfo=None)
        return now - timedelta(milliseconds=self.config.lag)

    # -- connections and errors -----------------------------------------------------------

    def _require_relation(self) -> Relation:
        if self._relation is None:
            raise RuntimeError("SqlPollSource.poll() called before start()")
        return self._relation

    def _resolve(self) -> Relation:
        with self._connection() as conn:
            return resolve(conn, self.config)

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A connection whose SQLAlchemy errors leave as changehub errors."""
        if self._db is None:
            raise RuntimeError("SqlPollSource used before start()")
        with self._db.use() as engine:
            try:
                conn = engine.connect()
            except sa_exc.SQLAlchemyError as exc:
                raise translate(
                    exc, doing=f"connecting for source {self.config.name!r}", url=self.config.url
                ) from exc
            try:
                with conn:
                    yield conn
            except sa_exc.SQLAlchemyError as exc:
                raise self._failure(exc, engine) from exc

    def _failure(self, exc: sa_exc.SQLAlchemyError, engine: Engine) -> ConnectorError:
        """A failed query as a changehub error: a schema that no longer fits says so."""
        doing = f"polling {self.config.table} for source {self.config.name!r}"
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return translate(exc, doing=doing, url=self.config.url)
        try:
            with engine.connect() as conn:
                resolve(conn, self.config)
        except ConnectorError as schema_problem:
            return schema_problem
        except sa_exc.SQLAlchemyError as again:
            return translate(again, doing=doing, url=self.config.url)
        return translate(exc, doing=doing, url=self.config.url)


def _epoch_ms(value: datetime) -> int:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)

