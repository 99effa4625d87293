"""Configuration of the ``batch`` sink (files named by offset range, listed in a manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from connectors.api import SinkConfig

__all__ = ["BatchSinkConfig", "Format"]

Format = Literal["jsonl", "parquet"]


class BatchSinkConfig(SinkConfig):
    """Keys of a ``type: batch`` sink (plus the common sink keys: topics, errors, batching)."""

    type: Literal["batch"] = "batch"
    path: Path = Field(description="directory the files and the manifest are written to")
    format: Format = Field(default="jsonl", description="jsonl or parquet")
