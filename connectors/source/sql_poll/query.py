"""The poll queries: the next page of rows after a watermark, in cursor order.

Per mode, as Kafka Connect's JDBC source (``upper`` = database now - lag)::

    incrementing            id > :id                                      ORDER BY id
    timestamp               ts > :ts AND ts < :upper                      ORDER BY ts
    timestamp+incrementing  (ts > :ts OR (ts = :ts AND id > :id))
                            AND ts < :upper                               ORDER BY ts, id

each with ``LIMIT batch_size``; rows whose cursor columns are NULL are never read. In
``timestamp`` mode a page cut inside a run of equal timestamps would lose the rest of the
run (the next page starts after that timestamp), so the run is completed by
:func:`ties_query` and the page may then exceed ``batch_size``.

SQLite keeps timestamps as text in whatever format the writer chose ("2026-01-31 02:00:00"
from ``CURRENT_TIMESTAMP``, "2026-01-31 02:00:00.000000" from SQLAlchemy, "…T…+01:00"), and
compares text, so there both sides are first normalised to UTC text with milliseconds
(``strftime('%Y-%m-%d %H:%M:%f', ts)``): the cursor order is then (ts to the millisecond,
id), the same in every query.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from connectors.source.sql_poll.config import Mode
from connectors.source.sql_poll.relation import Relation
from connectors.source.sql_poll.watermark import Watermark

__all__ = ["now_query", "page_query", "ties_query", "ts_as_compared"]


def page_query(
    relation: Relation, mode: Mode, after: Watermark, upper: datetime | None, limit: int
) -> sa.Select[Any]:
    """The next ``limit`` rows after ``after`` (and before ``upper`` in the timestamp modes)."""
    inc = relation.column(relation.cursor.incrementing) if relation.cursor.incrementing else None
    ts, at = _comparable_ts(relation) if relation.cursor.timestamp else (None, _same)
    where: list[sa.ColumnElement[bool]] = []
    order: list[sa.ColumnElement[Any]] = []
    if ts is not None:
        where.append(ts.is_not(None))
        if upper is not None:
            where.append(ts < at(upper))
        order.append(ts)
    if inc is not None:
        where.append(inc.is_not(None))
        order.append(inc)
    if mode == "incrementing":
        assert inc is not None
        if after.id is not None:
            where.append(inc > after.id)
    elif mode == "timestamp":
        assert ts is not None
        if after.ts is not None:
            where.append(ts > at(after.ts))
    else:
        assert ts is not None and inc is not None
        if after.ts is not None:
            last = at(after.ts)
            where.append(
                sa.or_(ts > last, sa.and_(ts == last, inc > after.id))
                if after.id is not None
                else ts >= last
            )
    return sa.select(relation.rows).where(*where).order_by(*order).limit(limit)


def now_query(dialect: str) -> sa.Select[Any]:
    """The database's current time, in UTC where the database's plain "now" is local time."""
    if dialect in ("mysql", "mariadb"):
        return sa.select(sa.func.utc_timestamp(6))  # CURRENT_TIMESTAMP is session-local
    if dialect == "mssql":
        return sa.select(sa.func.sysutcdatetime())
    return sa.select(sa.func.current_timestamp())  # UTC or zone-aware elsewhere


def ties_query(relation: Relation, ts_value: datetime) -> sa.Select[Any]:
    """Every row whose timestamp equals ``ts_value`` (timestamp mode's page completion)."""
    ts, at = _comparable_ts(relation)
    return sa.select(relation.rows).where(ts == at(ts_value))


def ts_as_compared(relation: Relation, value: datetime) -> Any:
    """``value`` as the database compares it with the timestamp column (see module doc)."""
    return _comparable_ts(relation)[1](value)


def _same(value: datetime) -> Any:
    return value


def _comparable_ts(
    relation: Relation,
) -> tuple[sa.ColumnElement[Any], Callable[[datetime], Any]]:
    """The timestamp column as compared in queries, and how a datetime is bound against it."""
    assert relation.cursor.timestamp is not None
    column = relation.column(relation.cursor.timestamp)
    if relation.dialect != "sqlite":
        return column, _same
    return sa.func.strftime(_SQLITE_FORMAT, column, type_=sa.String), _sqlite_text


_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f"


def _sqlite_text(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
