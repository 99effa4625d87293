"""A mixed change workload for the warehouse tests, and what each table mode must hold after it.

One topic, integer keys; inserts, updates and deletes (a deleted key comes back later), a
column that appears half-way (schema evolution) and a snapshot read at the start. Each event
has its own source time and LSN, so history rows can be checked exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from connectors.envelope import encode_key, event_records
from connectors.sink.sql.history import utc
from connectors.sqldb import describe_table
from log.api import LogRecord, TopicPartition

TOPIC = "shop.public.orders"
TP = TopicPartition(TOPIC, 0)
T0 = 1_760_000_000_000


@dataclass(frozen=True)
class Event:
    offset: int
    op: str
    key: int
    row: dict[str, Any] | None  # after image (c/u/r), before image (d)
    ts_ms: int
    lsn: int


def workload(events: int = 240, keys: int = 40, seed: int = 7) -> tuple[list[LogRecord],
                                                                          list[Event]]:
    """The records (events and tombstones, offsets from 0) and the events among them."""
    rng = random.Random(seed)
    live: dict[int, dict[str, Any]] = {}
    records: list[LogRecord] = []
    out: list[Event] = []
    for i in range(events):
        k = rng.randrange(keys)
        ts = T0 + i * 1500
        if i < 10:
            op = "r"
        elif k not in live:
            op = "c"
        else:
            op = "d" if rng.random() < 0.3 else "u"
        if op == "d":
            row = live.pop(k)
        else:
            row = {"id": k, "name": f"n{k}-{i}", "qty": rng.randrange(1000)}
            if i >= events // 2:
                row["price"] = round(rng.random() * 100, 2)  # a new column, half-way
            live[k] = row
        source = {"connector": "postgres", "name": "shop", "db": "shop", "schema": "public",
                  "table": "orders", "lsn": 10_000 + i, "ts_ms": ts,
                  "snapshot": "true" if op == "r" else "false"}
        made = event_records(
            topic=TOPIC, key=encode_key({"id": k}, ["id"]), op=op,  # type: ignore[arg-type]
            before=row if op == "d" else None, after=None if op == "d" else row,
            source=source, ts_ms=ts + 5,
        )
        out.append(Event(len(records), op, k, row, ts, 10_000 + i))
        for rec in made:
            records.append(LogRecord(TOPIC, 0, len(records), ts, rec.key, rec.value))
    return records, out


COLUMNS = ("id", "name", "qty", "price")


def _data(row: dict[str, Any] | None) -> tuple[Any, ...]:
    return tuple((row or {}).get(c) for c in COLUMNS)


def expected_upsert(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    state: dict[int, dict[str, Any]] = {}
    for e in events:
        if e.op == "d":
            state.pop(e.key, None)
        else:
            state[e.key] = dict(e.row or {})
    return sorted(_data(r) for r in state.values())


def expected_history(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    """(_offset, _op, _position, _ts, id, name, qty, price) per event."""
    return [(e.offset, e.op, str(e.lsn), utc(e.ts_ms), *_data(e.row)) for e in events]


def expected_scd2(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    """(_offset, _valid_from, _valid_to, _is_current, id, name, qty, price) per version."""
    versions: list[list[Any]] = []
    current: dict[int, list[Any]] = {}
    for e in events:
        previous = current.pop(e.key, None)
        if previous is not None:
            previous[2], previous[3] = utc(e.ts_ms), False
        if e.op != "d":
            version = [e.offset, utc(e.ts_ms), None, True, *_data(e.row)]
            versions.append(version)
            current[e.key] = version
    return [tuple(v) for v in versions]


def read_table(url: str, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """``columns`` of every row, ordered by them; booleans as bool, datetimes as naive UTC."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            described = describe_table(conn, None, table)
            assert described is not None, f"table {table} does not exist"
            t = sa.Table(table, sa.MetaData(),
                         *(sa.Column(c, described.columns[c]) for c in columns
                           if c in described.columns))
            select = sa.select(*(t.c[c] if c in t.c else sa.null() for c in columns))
            rows = conn.execute(select.order_by(*(t.c[c] for c in columns[:1]))).all()
    finally:
        engine.dispose()
    return sorted((tuple(_normal(c, v) for c, v in zip(columns, r, strict=True)) for r in rows),
                  key=repr)


def _normal(column: str, value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # MariaDB's DOUBLE reflects as a decimal type
    if column == "_is_current" and value is not None:
        return bool(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    if isinstance(value, str) and column in ("_ts", "_valid_from", "_valid_to"):
        return datetime.fromisoformat(value)
    return value
