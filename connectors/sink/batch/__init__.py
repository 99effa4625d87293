"""``batch``: records into JSON Lines, Parquet or CSV files, continuously or on a schedule."""

from __future__ import annotations

from connectors.sink.batch.config import BatchSinkConfig
from connectors.sink.batch.sink import BatchSink

__all__ = ["BatchSink", "BatchSinkConfig"]
