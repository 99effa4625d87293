"""Documents that embed rows of related tables, kept current from the log alone.

Declared per sink in YAML::

    topics: [shop.public.orders, shop.public.customers, shop.public.order_lines]
    nested:
      - {field: customer, topic: shop.public.customers, parent_key: customer_id,
         foreign_key: id, many: false}
      - {field: lines, topic: shop.public.order_lines, parent_key: id,
         foreign_key: order_id}

The sink's topics that are not a ``nested`` topic are the parents (``orders``): one
document per parent row. Every topic involved must be in ``topics``, so that the hub feeds
the sink all of them. The sink never queries the source database: it keeps the latest row of
every parent and child key in a SQLite file in its private data directory, with an index
from each parent's ``parent_key`` value to the parent, and on each change rebuilds the
documents of the parents it touches: a parent change rebuilds that parent; a child change
rebuilds the parents whose ``parent_key`` equals the child's ``foreign_key``, before and after
the change (a line moved to another order updates both orders). Keys match by their JSON
value: ``5`` and ``"5"`` are different.

Crash safety: the store and its offsets are committed in one SQLite transaction *after*
the flush's bulk succeeded, and ``start`` returns the store's offsets, so after a crash the
sink re-reads exactly what the store has not seen and rebuilds the same documents again.
Versions: a nested document mixes several topics, whose offsets cannot be compared, so each
flush takes the next number of a sequence kept in the same store, and documents are written
with ``version_type: external_gte`` (a flush redone after a crash reuses its number, which
``_gte`` accepts). Flushes are sequential, so a document is never overwritten by an older
state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from connectors.api import ConnectorContext, Offsets
from connectors.envelope import decode_key, decode_value
from connectors.sink.search.config import NestedConfig, SearchSinkConfig
from connectors.sink.search.documents import Action, BadRecordError, document_id
from connectors.sink.search.transforms import Transform
from log.api import LogRecord, TopicPartition

__all__ = ["NestedDocuments"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    topic TEXT NOT NULL, doc_id TEXT NOT NULL, row BLOB NOT NULL, fk TEXT,
    PRIMARY KEY (topic, doc_id));
CREATE INDEX IF NOT EXISTS rows_by_fk ON rows (topic, fk);
CREATE TABLE IF NOT EXISTS refs (
    field TEXT NOT NULL, value TEXT NOT NULL, topic TEXT NOT NULL, doc_id TEXT NOT NULL,
    PRIMARY KEY (field, value, topic, doc_id));
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS sequence (id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER);
"""


def _ref(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


class NestedDocuments:
    """Parent documents with embedded children; see the module doc. One thread at a time."""

    def __init__(self, config: SearchSinkConfig, context: ConnectorContext) -> None:
        self._config = config
        self._context = context
        self._children = {n.topic: n for n in config.nested}
        self._transform = Transform.of(config.transforms)
        self._child_transforms = {n.field: Transform.of(n.transforms) for n in config.nested}
        self._db: sqlite3.Connection | None = None
        self._dirty: dict[tuple[str, str], LogRecord] = {}  # (parent topic, doc id) -> cause
        self._sequence = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, resume: Offsets) -> Offsets:
        path = Path(self._context.data_dir) / "nested-documents.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._db.execute("BEGIN")
        stored = {
            TopicPartition(t, p): n
            for t, p, n in self._db.execute("SELECT topic, partition, next FROM offsets")
        }
        row = self._db.execute("SELECT value FROM sequence WHERE id = 0").fetchone()
        self._sequence = int(row[0]) if row else 0
        # The store is the truth for what it has seen; the hub may be older (a crash after
        # the store's commit and before the hub's).
        return {tp: stored.get(tp, offset) for tp, offset in resume.items()}

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.close()

    # -- changes into the store -------------------------------------------------------------

    def add(self, record: LogRecord) -> None:
        if record.value is None:
            return
        event = decode_value(record.value)
        if not isinstance(event, dict) or event.get("op") not in ("c", "u", "r", "d", "t"):
            raise BadRecordError("the value is not a change event (no op c/u/r/d/t)")
        child = self._children.get(record.topic)
        if event["op"] == "t":
            self._truncate(record, child)
            return
        key = decode_key(record.key)
        if not isinstance(key, dict):
            raise BadRecordError("the record has no primary key (its key is not a JSON object)")
        doc_id = document_id(key)
        row = event.get("after") if event["op"] != "d" else None
        if child is not None:
            self._child_change(record, child, doc_id, row)
        else:
            self._parent_change(record, doc_id, row)

    def _parent_change(self, record: LogRecord, doc_id: str, row: dict[str, Any] | None) -> None:
        db = self._conn()
        db.execute("DELETE FROM refs WHERE topic = ? AND doc_id = ?", (record.topic, doc_id))
        if row is None:
            db.execute("DELETE FROM rows WHERE topic = ? AND doc_id = ?", (record.topic, doc_id))
        else:
            db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, NULL)",
                       (record.topic, doc_id, orjson.dumps(row)))
            db.executemany(
                "INSERT OR IGNORE INTO refs VALUES (?, ?, ?, ?)",
                [(n.field, _ref(row.get(n.parent_key)), record.topic, doc_id)
                 for n in self._config.nested],
            )
        self._dirty[(record.topic, doc_id)] = record

    def _child_change(
        self, record: LogRecord, child: NestedConfig, doc_id: str, row: dict[str, Any] | None
    ) -> None:
        db = self._conn()
        old = db.execute("SELECT fk FROM rows WHERE topic = ? AND doc_id = ?",
                         (record.topic, doc_id)).fetchone()
        values = {old[0]} if old else set()
        if row is None:
            db.execute("DELETE FROM rows WHERE topic = ? AND doc_id = ?", (record.topic, doc_id))
        else:
            fk = _ref(row.get(child.foreign_key))
            db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?)",
                       (record.topic, doc_id, orjson.dumps(row), fk))
            values.add(fk)
        self._mark_parents(record, child, values)

    def _mark_parents(self, record: LogRecord, child: NestedConfig, values: Iterable[str]) -> None:
        db = self._conn()
        for value in values:
            for topic, parent in db.execute(
                "SELECT topic, doc_id FROM refs WHERE field = ? AND value = ?",
                (child.field, value),
            ):
                self._dirty[(topic, parent)] = record

    def _truncate(self, record: LogRecord, child: NestedConfig | None) -> None:
        db = self._conn()
        if child is not None:
            for topic, parent in db.execute(
                "SELECT DISTINCT topic, doc_id FROM refs WHERE field = ?", (child.field,)
            ):
                self._dirty[(topic, parent)] = record
        else:
            for (parent,) in db.execute("SELECT doc_id FROM rows WHERE topic = ?",
                                        (record.topic,)):
                self._dirty[(record.topic, parent)] = record
            db.execute("DELETE FROM refs WHERE topic = ?", (record.topic,))
        db.execute("DELETE FROM rows WHERE topic = ?", (record.topic,))

    # -- documents out of the store ---------------------------------------------------------

    def actions(self, name_for: Callable[[str, Any], str]) -> list[tuple[Action, LogRecord]]:
        """Operations rebuilding every parent touched since the last commit; ``name_for``
        gives the index of a parent topic."""
        if not self._dirty:
            return []
        version = self._sequence + 1
        out: list[tuple[Action, LogRecord]] = []
        for (topic, doc_id), cause in self._dirty.items():
            index = name_for(topic, None)
            row = self._row(topic, doc_id)
            if row is None or not self._transform.keeps(row):
                out.append((Action("delete", index, doc_id, version), cause))
                continue
            body = self._transform.apply(row)
            for nested in self._config.nested:
                body[nested.field] = self._embedded(nested, row.get(nested.parent_key))
            if self._config.version_field:
                body[self._config.version_field] = version
            out.append((Action("index", index, doc_id, version, body), cause))
        return out

    def commit(self, offsets: Offsets) -> None:
        """The flush's bulk succeeded: make the store, its offsets and the sequence durable."""
        db = self._conn()
        if self._dirty:
            self._sequence += 1
            db.execute("INSERT OR REPLACE INTO sequence VALUES (0, ?)", (self._sequence,))
        db.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                       [(tp.topic, tp.partition, n) for tp, n in offsets.items()])
        db.execute("COMMIT")
        db.execute("BEGIN")
        self._dirty.clear()

    def _row(self, topic: str, doc_id: str) -> dict[str, Any] | None:
        found = self._conn().execute("SELECT row FROM rows WHERE topic = ? AND doc_id = ?",
                                     (topic, doc_id)).fetchone()
        return None if found is None else orjson.loads(found[0])

    def _embedded(self, nested: NestedConfig, value: Any) -> Any:
        transform = self._child_transforms[nested.field]
        rows = []
        if value is not None:
            for doc_id, raw in self._conn().execute(
                "SELECT doc_id, row FROM rows WHERE topic = ? AND fk = ? ORDER BY doc_id",
                (nested.topic, _ref(value)),
            ):
                child = orjson.loads(raw)
                if transform.keeps(child):
                    rows.append((doc_id, transform.apply(child)))
        if nested.many:
            return [r for _, r in rows]
        return rows[0][1] if rows else None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("nested documents used before start() or after stop()")
        return self._db
