"""Rebuild a sink's indexes from the log and swap their aliases, with no downtime.

For a sink with ``alias: true``, :func:`reindex` does, per alias the sink writes to:

1. create ``<alias>-v<N+1>`` beside the index the alias points at now (same settings and
   mappings, or from the config for a first build);
2. write every record the log still holds for the alias's topics into it, through the sink's
   own write path (transforms, versions, nested documents, truncates) — on compacted topics
   the log holds the latest change of every key, which is all a rebuild needs;
3. point the alias at the new index in one atomic alias update; searches never see an
   empty or half-built index;
4. write once more what reached the log meanwhile (the running sink may have written those
   records into the old index only); versions make the overlap harmless;
5. delete the old index (unless ``keep_old``).

The hub may keep running: the log is only read, and the running sink keeps writing through
the alias, which from step 3 on reaches the new index.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from connectors.api import ConnectorContext, Offsets
from connectors.sink.search.config import SearchSinkConfig
from connectors.sink.search.engine import connect
from connectors.sink.search.indexes import concrete_name, next_generation
from connectors.sink.search.mapping import index_name
from connectors.sink.search.sink import SearchSink
from hub.errors import RecordError, UsageError
from log.api import Log, LogRecord, TopicPartition

__all__ = ["ReindexResult", "reindex"]

READ_BATCH = 5000


@dataclass
class ReindexResult:
    alias: str
    old: list[str]
    new: str
    records: int
    topics: list[str] = field(default_factory=list)


def reindex(
    config: SearchSinkConfig, log: Log, logger: logging.Logger, *, keep_old: bool = False
) -> list[ReindexResult]:
    """Rebuild every index of the sink ``config`` from ``log``; see the module doc."""
    import fnmatch

    if not config.alias:
        raise UsageError(
            f"sink {config.name!r} writes to indexes, not aliases: set alias: true on it "
            "(and reindex once, which moves each index behind an alias of the same name only "
            "if no index of that name exists) to rebuild without downtime"
        )
    nested_topics = {n.topic for n in config.nested}
    topics = sorted(t for t in log.list_topics()
                    if any(fnmatch.fnmatchcase(t, p) for p in config.topics)
                    and not t.endswith(".dlq"))
    by_alias: dict[str, list[str]] = {}
    for topic in topics:
        if topic in nested_topics:
            continue
        by_alias.setdefault(index_name(config.index, topic, None), []).append(topic)
    results = []
    for alias, parents in sorted(by_alias.items()):
        feed = parents + sorted(nested_topics)
        results.append(_rebuild(config, log, logger, alias, feed, keep_old))
    return results


def _rebuild(
    config: SearchSinkConfig, log: Log, logger: logging.Logger, alias: str,
    topics: list[str], keep_old: bool,
) -> ReindexResult:
    engine = connect(config.engine_name, config.hosts, timeout=config.request_timeout_s,
                     auth=(config.username, config.password)
                     if config.username and config.password else None,
                     verify_certs=config.verify_certs, ca_certs=config.ca_certs)
    try:
        old = engine.alias_targets(alias)
        if not old and engine.index_exists(alias):
            raise UsageError(
                f"{alias} is an index, not an alias: the running sink must write through an "
                f"alias to be rebuilt without downtime. Reindex into a new name first, or "
                f"delete {alias} and let the sink (with alias: true) recreate it"
            )
        new = concrete_name(alias, next_generation(alias, old))
        body = engine.index_body(old[0]) if old else None
    finally:
        engine.close()

    with tempfile.TemporaryDirectory(prefix="changehub-reindex-") as data_dir:
        context = ConnectorContext(name=f"{config.name}.reindex", log=log,
                                   data_dir=Path(data_dir), logger=logger,
                                   dead_letter=_refuse)
        sink = SearchSink(config, context)
        sink.start({})
        try:
            assert sink._indexes is not None and sink._engine is not None
            if body is not None:
                sink._engine.create_index(new, body)
            sink._indexes.fixed_target = new
            positions = {TopicPartition(t, p): log.start_offset(TopicPartition(t, p))
                         for t in topics for p in range(log.topic_config(t).partitions)}
            count = _copy(sink, log, positions)
            sink._engine.update_aliases(
                [{"remove": {"index": i, "alias": alias}} for i in old]
                + [{"add": {"index": new, "alias": alias}}]
            )
            logger.info("reindex %s: alias %s now points at %s (was %s)", config.name, alias,
                        new, ", ".join(old) or "nothing")
            count += _copy(sink, log, positions)
            if not keep_old:
                for index in old:
                    sink._engine.delete_index(index)
        finally:
            sink.stop()
    return ReindexResult(alias, old, new, count, topics)


def _copy(sink: SearchSink, log: Log, positions: Offsets) -> int:
    """Write everything from ``positions`` to the current end; move ``positions`` along."""
    ends = {tp: log.end_offset(tp) for tp in positions}
    count = 0
    for tp, end in ends.items():
        while positions[tp] < end:
            batch: list[LogRecord] = log.read(tp, positions[tp], max_records=READ_BATCH)
            batch = [r for r in batch if r.offset < end]
            if not batch:
                break
            sink.write(batch)
            count += len(batch)
            positions[tp] = batch[-1].offset + 1
        sink.flush()
    return count


def _refuse(record: LogRecord, reason: str) -> None:
    raise RecordError(f"{reason}; reindex stops at the first record it cannot write",
                      topic=record.topic, partition=record.partition, offset=record.offset)
