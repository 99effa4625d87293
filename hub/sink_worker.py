"""The sink loop: fetch from committed offsets -> write -> flush -> commit offsets.

Delivery is at-least-once and the sinks make it idempotent: offsets are committed only after
``flush`` said the target holds everything before them, so a crash replays at most the
unflushed tail, and the target's own idempotence (versions, upserts, offset-named files)
absorbs the replay.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from connectors.api import Offsets, Sink, SinkConfig, dead_letter_topic, merge_offsets
from hub.backoff import Backoff
from hub.errors import RecordError
from hub.state import ConnectorStatus
from hub.worker import Worker
from log.api import Log, LogRecord, Record, TopicPartition

__all__ = ["SinkWorker", "match_topics"]

log = logging.getLogger("changehub.sink")

FETCH_TIMEOUT_S = 0.5
TOPIC_REFRESH_S = 2.0


def match_topics(patterns: Sequence[str], topics: Sequence[str]) -> list[str]:
    """Topics matching any of ``patterns`` (exact names or fnmatch globs), sorted."""
    return sorted(t for t in topics if any(fnmatch.fnmatchcase(t, p) for p in patterns))


class SinkWorker(Worker):
    def __init__(
        self,
        status: ConnectorStatus,
        config: SinkConfig,
        make: Callable[[Callable[[LogRecord, str], None]], Sink[Any]],
        log_: Log,
        ensure_topic: Callable[[str], int],
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(status, backoff)
        self._config = config
        self._make = make
        self._log = log_
        self._ensure_topic = ensure_topic
        self._clock = clock
        self._sink: Sink[Any] | None = None
        self._positions: Offsets = {}
        self._committed: Offsets = {}
        self._dead: list[Record] = []
        self._pending_records = 0
        self._pending_bytes = 0
        self._first_pending = 0.0
        self._next_refresh = 0.0
        self._dlq = dead_letter_topic(config)

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        name = self.status.name
        self._dead.clear()
        self._pending_records = self._pending_bytes = 0
        self._committed = self._log.committed_offsets(name)
        resume: Offsets = {}
        for tp in self._subscribed():
            resume[tp] = self._committed.get(tp, self._log.start_offset(tp))
        sink = self._make(self._dead_letter)
        self._sink = sink
        chosen = sink.start(dict(resume))
        self._positions = {**resume, **chosen}
        ahead = {tp: off for tp, off in chosen.items() if off > self._committed.get(tp, -1)}
        if ahead:
            # The target already holds these (it stores offsets with its rows, and the hub
            # died before committing, or offsets were reset): record that in the log too.
            self._committed = merge_offsets(self._committed, ahead)
            self._log.commit_offsets(name, self._committed)
        self._next_refresh = self._clock() + TOPIC_REFRESH_S
        log.info("sink %s started at %s", name, _fmt(self._positions))

    def step(self) -> None:
        assert self._sink is not None
        now = self._clock()
        if now >= self._next_refresh:
            self._refresh_topics()
            self._next_refresh = now + TOPIC_REFRESH_S
        timeout = FETCH_TIMEOUT_S
        if self._pending_records:
            due = self._first_pending + self._config.flush_interval / 1000
            timeout = max(0.0, min(timeout, due - now))
        records = (
            self._log.fetch(
                self._positions,
                max_records=self._config.max_batch_records,
                max_bytes=self._config.max_batch_bytes,
                timeout=timeout,
            )
            if self._positions
            else []
        )
        if records:
            self._write(records)
        if self._pending_records and (
            not records
            or self._pending_records >= self._config.max_batch_records
            or self._pending_bytes >= self._config.max_batch_bytes
            or self._clock() - self._first_pending >= self._config.flush_interval / 1000
        ):
            self._flush_and_commit()
        elif not records and not self._positions:
            self.stopping.wait(FETCH_TIMEOUT_S)

    def close(self, graceful: bool) -> None:
        sink, self._sink = self._sink, None
        if sink is None:
            return
        try:
            if graceful and self._pending_records:
                self._flush_and_commit(sink)
        finally:
            sink.stop()

    # -- the work -------------------------------------------------------------------------

    def _write(self, records: list[LogRecord]) -> None:
        assert self._sink is not None
        if not self._pending_records:
            self._first_pending = self._clock()
        self._sink.write(records)
        positions = self._positions
        size = 0
        for r in records:
            positions[TopicPartition(r.topic, r.partition)] = r.offset + 1
            if r.value is not None:
                size += len(r.value)
        self._pending_records += len(records)
        self._pending_bytes += size

    def _flush_and_commit(self, sink: Sink[Any] | None = None) -> None:
        sink = sink or self._sink
        assert sink is not None
        flushed = sink.flush()
        if self._dead:
            # The dead letters must be durable before the offsets past them are committed,
            # or a crash in between would lose them.
            self._ensure_topic(self._dlq)
            self._log.append(TopicPartition(self._dlq, 0), self._dead)
            self.cell.add(dead_letters=len(self._dead))
            self._dead = []
        new = merge_offsets(self._committed, flushed)
        if new != self._committed:
            self._log.commit_offsets(self.status.name, new)
            self._committed = new
        self.cell.add(records=self._pending_records)
        self._pending_records = self._pending_bytes = 0
        self.backoff.reset()

    def _dead_letter(self, record: LogRecord, reason: str) -> None:
        if self._config.errors.tolerance != "all":
            raise RecordError(
                f"{reason} (set errors.tolerance: all on sink {self.status.name!r} to send "
                "such records to its dead-letter topic and carry on)",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        headers = (
            ("changehub.error.reason", reason.encode()),
            ("changehub.error.sink", self.status.name.encode()),
            ("changehub.source.topic", record.topic.encode()),
            ("changehub.source.partition", str(record.partition).encode()),
            ("changehub.source.offset", str(record.offset).encode()),
        )
        self._dead.append(Record(record.key, record.value, record.timestamp_ms, headers))
        log.warning("sink %s: %s -> dead-letter topic %s", self.status.name, reason, self._dlq)

    def _subscribed(self) -> list[TopicPartition]:
        names = [t for t in match_topics(self._config.topics, self._log.list_topics())
                 if t != self._dlq]
        return [
            TopicPartition(t, p)
            for t in names
            for p in range(self._log.topic_config(t).partitions)
        ]

    def _refresh_topics(self) -> None:
        for tp in self._subscribed():
            if tp not in self._positions:
                self._positions[tp] = self._committed.get(tp, self._log.start_offset(tp))
                log.info("sink %s: new partition %s from offset %d",
                         self.status.name, tp, self._positions[tp])

    def caught_up(self) -> bool:
        """Nothing pending and the committed offsets reach the end of every partition."""
        if self._pending_records or self._sink is None:
            return False
        subscribed = self._subscribed()
        return all(
            self._log.caught_up(tp, self._committed.get(tp, self._log.start_offset(tp)))
            for tp in subscribed
        ) and all(tp in self._positions for tp in subscribed)

    @property
    def committed(self) -> Offsets:
        return dict(self._committed)

    @property
    def connector(self) -> Sink[Any] | None:
        """The running sink (None between attempts), for metrics and the API."""
        return self._sink


def _fmt(offsets: Offsets) -> str:
    if not offsets:
        return "no partitions yet"
    return ", ".join(f"{tp}@{off}" for tp, off in sorted(offsets.items()))
