"""``batch``: records into JSON Lines or Parquet files named by offset range, with a manifest."""

from __future__ import annotations

from connectors.sink.batch.config import BatchSinkConfig
from connectors.sink.batch.sink import BatchSink

__all__ = ["BatchSink", "BatchSinkConfig"]
