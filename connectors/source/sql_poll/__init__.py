"""``sql_poll``: poll any SQL table (or query) by incrementing id and/or timestamp."""

from __future__ import annotations

from connectors.source.sql_poll.config import SqlPollConfig
from connectors.source.sql_poll.source import SqlPollSource

__all__ = ["SqlPollConfig", "SqlPollSource"]
