"""The sink loop: fetch from committed offsets -> write -> flush -> commit offsets.

Delivery is at-least-once and the sinks make it idempotent: offsets are committed only after
``flush`` said the target holds everything before them, so a crash replays at most the
unflushed tail, and the target's own idempotence (versions, upserts, offset-named files)
absorbs the replay.

Scale-out: on the Kafka backend every hub process running the pipeline joins the sink's
consumer group (:mod:`log.kafka.groups`; the group is the sink's name, the one its offsets
are committed under) and works only on the partitions the group gives it. When the group
takes partitions away (a process joined, or this one leaves), the sink is flushed and its
offsets committed before they go, and the sink forgets them (``Sink.revoke``); when it gives
partitions, they are added to the running sink (``Sink.assign``) and each resumes from its
committed offset, or from the offset the target stored itself (the sql sink's offsets
table). Assignment is cooperative-sticky, so the partitions that stay keep being written
through a rebalance: nothing is restarted. A sink without those hooks is restarted on its
new share instead. A process whose session expired (it stalled, and the partitions went
elsewhere) drops what it had not flushed and restarts: the new holder replays it. On the
embedded log one process holds everything (the log directory is locked).
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from connectors.api import Offsets, Sink, SinkConfig, dead_letter_topic, merge_offsets
from hub.backoff import Backoff
from hub.errors import RecordError
from hub.state import ConnectorStatus
from hub.worker import Worker
from log.api import Log, LogRecord, Record, TopicPartition

if TYPE_CHECKING:
    from log.kafka.groups import GroupMember

__all__ = ["SinkWorker", "match_topics"]

log = logging.getLogger("changehub.sink")

FETCH_TIMEOUT_S = 0.5
JOIN_WAIT_S = 0.2  # a member waiting for its first assignment polls the group this long
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
        self._flushed: Offsets = {}  # durable in the target; committed unless Kafka refused
        self._dead: list[Record] = []
        self._pending_records = 0
        self._pending_bytes = 0
        self._first_pending = 0.0
        self._next_refresh = 0.0
        self._dlq = dead_letter_topic(config)
        self._member: GroupMember | None = None  # Kafka: this process's share of the sink
        self._reassigned = False  # restart the sink on its share (it cannot change it live)
        self._added: set[TopicPartition] = set()  # given by the group, not taken in yet

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        self._reassigned = False
        self._member = self._join()
        if self._member is None:
            self._start_sink()
        # else: the sink starts once the group said which partitions are this process's
        self._next_refresh = self._clock() + TOPIC_REFRESH_S

    def _join(self) -> GroupMember | None:
        from log.kafka.backend import KafkaLog

        if not isinstance(self._log, KafkaLog):
            return None
        member = self._log.group_member(
            self.status.name,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        member.subscribe(self._topics())
        return member

    def _start_sink(self) -> None:
        name = self.status.name
        self._dead.clear()
        self._pending_records = self._pending_bytes = 0
        self._reassigned = False
        self._added.clear()
        self._committed = self._log.committed_offsets(name)
        self._flushed = dict(self._committed)
        resume: Offsets = {}
        for tp in self._owned():
            resume[tp] = self._committed.get(tp, self._log.start_offset(tp))
        sink = self._make(self._dead_letter)
        self._sink = sink
        chosen = sink.start(dict(resume))
        self._positions = {**resume, **{tp: o for tp, o in chosen.items() if tp in resume}}
        ahead = {tp: off for tp, off in chosen.items() if off > self._committed.get(tp, -1)}
        if ahead:
            # The target already holds these (it stores offsets with its rows, and the hub
            # died before committing, or offsets were reset): record that in the log too.
            self._flushed = merge_offsets(self._flushed, ahead)
            self._commit()
        log.info("sink %s started at %s", name, _fmt(self._positions))

    def _close_sink(self, graceful: bool) -> None:
        sink, self._sink = self._sink, None
        if sink is None:
            return
        try:
            if graceful and self._pending_records:
                self._flush_and_commit(sink)
            elif graceful:
                self._commit()  # offsets a refused commit left behind
        finally:
            self._pending_records = self._pending_bytes = 0
            sink.stop()

    # -- the group's decisions (called inside GroupMember.poll, on this thread) -----------

    def _on_assign(self, tps: list[TopicPartition]) -> None:
        # only the added partitions (cooperative): taken in at the next step
        self._added.update(tps)

    def _on_revoke(self, tps: list[TopicPartition]) -> None:
        if not tps:
            return
        self._added.difference_update(tps)
        sink = self._sink
        if sink is None or self._reassigned:
            self._close_sink(graceful=True)
            self._reassigned = True
            return
        # before the group hands them over: everything written is flushed and committed
        if self._pending_records:
            self._flush_and_commit(sink)
        else:
            self._commit()  # offsets a refused commit left behind
        if not sink.revoke(list(tps)):
            self._close_sink(graceful=True)  # it cannot drop partitions live: a restart
            self._reassigned = True
            return
        gone = set(tps)
        # replaced whole, not changed in place: the API thread reads them (``committed``)
        self._positions = {tp: o for tp, o in self._positions.items() if tp not in gone}
        self._flushed = {tp: o for tp, o in self._flushed.items() if tp not in gone}
        self._committed = {tp: o for tp, o in self._committed.items() if tp not in gone}
        log.info("sink %s: %s moved to another process; its other partitions go on",
                 self.status.name, ", ".join(map(str, sorted(gone))))

    def _take_added(self, sink: Sink[Any]) -> None:
        """Add the partitions the group gave to the running sink, each from its committed
        offset (the previous holder committed before letting go) or the target's own."""
        added, self._added = self._added, set()
        assert self._member is not None
        mine = self._member.assignment()
        new = sorted(tp for tp in added if tp in mine and tp not in self._positions)
        if not new:
            return
        group = self._log.committed_offsets(self.status.name)
        committed = {tp: group[tp] for tp in new if tp in group}
        resume = {tp: committed.get(tp, self._log.start_offset(tp)) for tp in new}
        chosen = sink.assign(dict(resume))
        if chosen is None:
            self._reassigned = True  # it cannot take partitions live: a restart
            return
        positions = {**resume, **{tp: o for tp, o in chosen.items() if tp in resume}}
        self._committed = {**self._committed, **committed}
        self._flushed = {**self._flushed, **committed}
        self._positions = {**self._positions, **positions}
        ahead = {tp: o for tp, o in positions.items() if o > committed.get(tp, -1)}
        if ahead:
            # the target holds these already (see _start_sink)
            self._flushed = merge_offsets(self._flushed, ahead)
            self._commit()
        log.info("sink %s: added %s; its other partitions go on", self.status.name,
                 _fmt(positions))

    def _on_lost(self, tps: list[TopicPartition]) -> None:
        if tps:
            # already someone else's: no commit; the new holder replays the unflushed tail
            self._close_sink(graceful=False)
            self._reassigned = True

    def tick_paused(self) -> None:
        if self._member is not None:
            self._member.poll()

    def step(self) -> None:
        member = self._member
        if member is not None:
            waiting = self._sink is None and not self._reassigned
            member.poll(JOIN_WAIT_S if waiting else 0.0)
            if self._sink is None and not member.rebalanced and member.subscribed:
                return  # not told our share yet
        if self._added and self._sink is not None and not self._reassigned:
            self._take_added(self._sink)
        if self._sink is None or self._reassigned:
            self._close_sink(graceful=True)
            self._start_sink()
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
        try:
            # still a member here: the last flush's offsets are committed as this
            # generation's member (the group refuses a commit from outside while hubs are
            # members), so whoever takes the partitions next starts after them
            self._close_sink(graceful)
        finally:
            member, self._member = self._member, None
            if member is not None:
                member.close()  # leave the group: the others take the partitions at once

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
        if self._member is not None:
            # a sink may still report partitions that moved to another process
            flushed = {tp: o for tp, o in flushed.items() if tp in self._positions}
        if self._dead:
            # The dead letters must be durable before the offsets past them are committed,
            # or a crash in between would lose them.
            self._ensure_topic(self._dlq)
            self._log.append(TopicPartition(self._dlq, 0), self._dead)
            self.cell.add(dead_letters=len(self._dead))
            self._dead = []
        self._flushed = merge_offsets(self._flushed, flushed)
        self._commit()
        self.cell.add(records=self._pending_records)
        self._pending_records = self._pending_bytes = 0
        self.backoff.reset()

    def _commit(self) -> None:
        """Commit what the target holds: as a group member only this process's partitions
        (Kafka refuses the rest), and a refused commit is tried again at the next flush."""
        if self._flushed == self._committed:
            return
        if self._member is None:
            self._log.commit_offsets(self.status.name, self._flushed)
            self._committed = dict(self._flushed)
            return
        mine = self._member.assignment()
        todo = {
            tp: o
            for tp, o in self._flushed.items()
            if tp in mine and self._committed.get(tp) != o
        }
        if self._member.commit(todo):
            self._committed = {**self._committed, **todo}

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

    def _topics(self) -> list[str]:
        return [t for t in match_topics(self._config.topics, self._log.list_topics())
                if t != self._dlq]

    def _subscribed(self) -> list[TopicPartition]:
        return [
            TopicPartition(t, p)
            for t in self._topics()
            for p in range(self._log.topic_config(t).partitions)
        ]

    def _owned(self) -> list[TopicPartition]:
        """The partitions this process works on: all of them, or the group's share."""
        subscribed = self._subscribed()
        if self._member is None:
            return subscribed
        mine = self._member.assignment()
        return [tp for tp in subscribed if tp in mine]

    def _refresh_topics(self) -> None:
        if self._member is not None:
            # new topics join the subscription; their partitions come back as assignments
            self._member.subscribe(self._topics())
            return
        for tp in self._subscribed():
            if tp not in self._positions:
                self._positions[tp] = self._committed.get(tp, self._log.start_offset(tp))
                log.info("sink %s: new partition %s from offset %d",
                         self.status.name, tp, self._positions[tp])

    def caught_up(self) -> bool:
        """Nothing pending, and every partition of every topic the sink reads *now* (listed
        afresh: a source may have created a topic since the last refresh) is committed to
        its end. On Kafka the other members' partitions are judged by the group's committed
        offsets, so a process whose share is still empty (or not yet assigned) is not taken
        for caught up while the group has records nobody has written."""
        if self._pending_records or self._sink is None or self._reassigned or self._added:
            return False
        subscribed = self._subscribed()
        if self._member is None:
            return all(
                tp in self._positions
                and self._log.caught_up(tp, self._committed.get(tp, self._log.start_offset(tp)))
                for tp in subscribed
            )
        committed = self.committed
        return all(
            self._log.caught_up(tp, committed.get(tp, self._log.start_offset(tp)))
            for tp in subscribed
        )

    @property
    def committed(self) -> Offsets:
        """The sink's committed offsets. As a group member this process knows only its own
        share first-hand; the other processes' partitions are read from the group."""
        committed = self._committed
        if self._member is None:
            return dict(committed)
        owned = self._positions  # replaced whole when partitions come or go: safe to read
        mine = {tp: o for tp, o in committed.items() if tp in owned}
        return {**self._log.committed_offsets(self.status.name), **mine}

    @property
    def connector(self) -> Sink[Any] | None:
        """The running sink (None between attempts), for metrics and the API."""
        return self._sink


def _fmt(offsets: Offsets) -> str:
    if not offsets:
        return "no partitions yet"
    return ", ".join(f"{tp}@{off}" for tp, off in sorted(offsets.items()))
