"""``sql``: change events into tables of any SQL database (SQLite, DuckDB, PostgreSQL …)."""

from __future__ import annotations

from connectors.sink.sql.config import SqlSinkConfig
from connectors.sink.sql.sink import SqlSink

__all__ = ["SqlSink", "SqlSinkConfig"]
