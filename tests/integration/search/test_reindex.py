"""Rebuilding a sink's index from the log and swapping its alias."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from connectors.sink.search import SearchSink, SearchSinkConfig
from connectors.sink.search.reindex import reindex
from connectors.testing import DeadLetters, make_context
from hub.errors import UsageError
from log.api import Log, LogRecord, Record, TopicConfig, TopicPartition
from log.factory import open_log
from tests.integration.search.conftest import Target
from tests.integration.search.events import Stream

pytestmark = pytest.mark.integration


def _append(log: Log, records: list[LogRecord]) -> list[LogRecord]:
    """Put records into the log; return them with the offsets the log gave them."""
    tp = TopicPartition(records[0].topic, 0)
    log.create_topic(tp.topic, TopicConfig())
    base = log.append(tp, [Record(r.key, r.value, r.timestamp_ms) for r in records])
    return [r._replace(offset=base + i) for i, r in enumerate(records)]


def test_reindex_builds_a_new_generation_and_swaps_the_alias(
    engine: Target, tmp_path: Path
) -> None:
    config = SearchSinkConfig(name="search", type=engine.kind, topics=["shop.*"],
                              hosts=[engine.url], index=engine.prefix + "-{table}",
                              alias=True)
    s = Stream()
    alias = f"{engine.prefix}-orders"
    with open_log("embedded", tmp_path / "log") as log:
        first = _append(log, s.change("c", {"id": 1, "v": 1}) + s.change("c", {"id": 2, "v": 1})
                        + s.change("d", key={"id": 2}))
        sink = SearchSink(config, make_context("search", tmp_path / "d", DeadLetters(False)))
        sink.start({})
        sink.write(first)
        sink.flush()
        # Someone damages the index behind the sink's back.
        engine.client.delete(index=f"{alias}-v1", id="1", refresh=True)
        assert engine.documents(alias) == {}

        # The live sink keeps writing while the rebuild runs.
        more = _append(log, s.change("c", {"id": 3, "v": 1}) + s.change("u", {"id": 1, "v": 2}))
        results = reindex(config, log, logging.getLogger("test"))
        sink.write(more)
        sink.flush()
        sink.stop()

    assert [(r.alias, r.old, r.new) for r in results] == [(alias, [f"{alias}-v1"], f"{alias}-v2")]
    assert sorted(engine.client.indices.get_alias(name=alias)) == [f"{alias}-v2"]
    assert not engine.client.indices.exists(index=f"{alias}-v1")
    assert engine.documents(alias) == {"1": {"id": 1, "v": 2}, "3": {"id": 3, "v": 1}}


def test_reindex_needs_an_alias(engine: Target, tmp_path: Path) -> None:
    config = SearchSinkConfig(name="search", type=engine.kind, topics=["shop.*"],
                              hosts=[engine.url], index=engine.prefix + "-{table}")
    with open_log("embedded", tmp_path / "log") as log, pytest.raises(UsageError, match="alias"):
        reindex(config, log, logging.getLogger("test"))
