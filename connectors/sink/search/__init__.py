"""``elasticsearch`` / ``opensearch``: change events into search-engine documents."""

from __future__ import annotations

from connectors.sink.search.config import SearchSinkConfig
from connectors.sink.search.sink import SearchSink

__all__ = ["SearchSink", "SearchSinkConfig"]
