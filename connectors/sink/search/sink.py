"""The search sink: change events into Elasticsearch or OpenSearch documents.

``write`` turns each record into one operation (:mod:`.documents`): ``c``/``u``/``r`` index
the row (after the sink's :mod:`.transforms`) as the document whose id is the primary key,
``d`` deletes it, a row the filter drops is deleted too (it may have matched before), and a
tombstone is ignored. Operations are collapsed to the last one per document; each time
``bulk_actions`` of them are pending they go out in a bulk in the background (up to
``concurrency`` in flight), and ``flush`` sends the rest and waits for all (:mod:`.bulk`),
with external versions (:mod:`.versioning`), creating missing indexes on the way
(:mod:`.mapping`). A truncate first sends what came before it,
then empties the index (recreates it, or deletes by query).

A batch of at least ``COLUMNAR_MIN_RECORDS`` upserts into existing indexes, with no
transforms, nested documents or ``version_field``, takes the columnar path instead
(:mod:`.columnar`): its bulk lines are built in one DuckDB query and a few Arrow kernels,
byte for byte those the per-record path would send, and go out in bulks of
``bulk_actions`` lines, the rest waiting for the next batch or the flush. Any batch it
cannot take whole (a delete in it, say) goes record by record.

The target keeps no offsets of its own: ``start`` returns the hub's, and a replay from them
is absorbed by the versions (the engine answers 409 to an older write; those are counted in
:meth:`SearchSink.metrics`, not treated as errors).

Failures: a record that is not a change event, a row the filter cannot judge, and a
document the engine rejects (mapping conflict, bad value) go to ``context.dead_letter``
with the reason. An unreachable or overloaded engine is retried inside ``flush`` for
``retry_timeout_s``, then :class:`~hub.errors.RetriableError` lets the hub restart the sink
from its committed offsets, with backoff, for as long as it takes.
"""

from __future__ import annotations

import random
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from operator import itemgetter
from typing import Any, ClassVar

from connectors.api import ConnectorContext, Offsets, Sink, SinkConfig
from connectors.envelope import decode_key, decode_value
from connectors.sink.search.bulk import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    BulkResult,
    BulkSender,
    PreparedBulk,
    SenderStoppedError,
)
from connectors.sink.search.columnar import LineBuilder, Lines
from connectors.sink.search.config import SearchSinkConfig
from connectors.sink.search.documents import Action, BadRecordError, document_id
from connectors.sink.search.engine import (
    Engine,
    EngineRequestError,
    EngineUnavailableError,
    connect,
)
from connectors.sink.search.indexes import Indexes
from connectors.sink.search.metrics import SinkMetrics
from connectors.sink.search.nested import NestedDocuments
from connectors.sink.search.transforms import FilterError, Transform
from connectors.sink.search.versioning import version_of
from hub.errors import FatalError, RetriableError
from log.api import LogRecord, TopicPartition

__all__ = ["SearchSink"]

STOP_WAIT_S = 60.0
# Batches at least this long are tried on the columnar path (:mod:`.columnar`); a shorter
# one (a quiet log's few records) costs less record by record than a DuckDB query.
COLUMNAR_MIN_RECORDS = 64
_TOPIC_PARTITION = itemgetter(*(LogRecord._fields.index(f) for f in ("topic", "partition")))


class SearchSink(Sink[SearchSinkConfig]):
    """See the module doc. ``stop`` may come from any thread; the rest from one."""

    config_model: ClassVar[type[SinkConfig]] = SearchSinkConfig

    def __init__(self, config: SearchSinkConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self._stopping = threading.Event()
        self._busy = threading.Lock()  # held by write/flush; stop waits for it
        self._engine: Engine | None = None
        self._sender: BulkSender | None = None
        self._indexes: Indexes | None = None
        self._transform = Transform.of(config.transforms)
        self._nested = NestedDocuments(config, context) if config.nested else None
        self._pending: dict[tuple[str, str], tuple[Action, LogRecord]] = {}
        # The columnar path's lines not sent yet (fewer than bulk_actions after a write).
        self._lines: Lines | None = None
        self._builder = (
            LineBuilder("external")
            if self._nested is None and self._transform.is_identity
            and self._transform.filter is None and not config.version_field
            else None
        )
        # Each bulk in flight, the actions it holds (for the counts: none listed for the
        # columnar path's, which are all upserts) and its records by id(action).
        self._in_flight: deque[
            tuple[Future[BulkResult], Sequence[Action], Callable[[], Mapping[int, LogRecord]]]
        ] = deque()
        self._next: Offsets = {}
        self._flushed: Offsets = {}
        self.stats = SinkMetrics()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, resume: Offsets) -> Offsets:
        cfg = self.config
        auth = (cfg.username, cfg.password) if cfg.username and cfg.password else None
        try:
            self._engine = connect(
                cfg.engine_name, cfg.hosts, auth=auth, timeout=cfg.request_timeout_s,
                verify_certs=cfg.verify_certs, ca_certs=cfg.ca_certs,
                pool_size=cfg.concurrency + 1,
            )
        except EngineUnavailableError as exc:
            raise RetriableError(f"search sink {cfg.name!r}: {exc}") from exc
        except EngineRequestError as exc:
            raise FatalError(f"search sink {cfg.name!r}: {exc}") from exc
        self._sender = BulkSender(
            self._engine, max_actions=cfg.bulk_actions, max_bytes=cfg.bulk_bytes,
            concurrency=cfg.concurrency, retry_timeout_s=cfg.retry_timeout_s,
            stopping=self._stopping,
            version_type="external_gte" if self._nested else "external",
        )
        self._indexes = Indexes(self._engine, cfg, self.context.logger)
        self._next = dict(resume)
        self._flushed = dict(resume)
        if self._nested is not None:
            resume = self._nested.start(resume)
            self._next = dict(resume)
            self._flushed = dict(resume)
        self.context.logger.info(
            "search sink %s: writing to %r", cfg.name, self._engine
        )
        return resume

    def write(self, records: Sequence[LogRecord]) -> None:
        with self._guard("write"):
            if len(records) >= COLUMNAR_MIN_RECORDS and self._write_columnar(records):
                return
            next_offsets = self._next
            for record in records:
                # A TopicPartition equals the plain (topic, partition) tuple: no object per
                # record just to look its offset up.
                where = (record.topic, record.partition)
                last = next_offsets.get(where)  # type: ignore[call-overload]
                if last is None:
                    next_offsets[record.tp] = record.offset + 1
                elif record.offset < last:
                    continue  # sent already in this run (the hub replays from older offsets)
                else:
                    # Assigning to an equal key keeps the TopicPartition already there.
                    next_offsets[where] = record.offset + 1  # type: ignore[index]
                self.stats.records += 1
                if self._nested is not None:
                    self._nested.add(record)
                    continue
                try:
                    self._add(record)
                except (BadRecordError, FilterError) as exc:
                    self._dead_letter(record, str(exc))
                if len(self._pending) >= self.config.bulk_actions:
                    self._send_pending(wait=False)

    def flush(self) -> Offsets:
        with self._guard("flush"):
            self._send_pending()
            if self._nested is not None:
                self._send_nested()
            self._flushed = dict(self._next)
            self.stats.flushed()
            return dict(self._flushed)

    def assign(self, resume: Offsets) -> Offsets | None:
        if self._nested is not None:
            return None  # its own offsets table is read in start: restarted instead
        with self._guard("assign"):
            self._next.update(resume)
            self._flushed.update(resume)
        return dict(resume)

    def revoke(self, partitions: Sequence[TopicPartition]) -> bool:
        if self._nested is not None:
            return False
        with self._guard("revoke"):
            for tp in partitions:  # flushed: nothing of theirs is pending or in flight
                self._next.pop(tp, None)
                self._flushed.pop(tp, None)
        return True

    def stop(self) -> None:
        self._stopping.set()
        acquired = self._busy.acquire(timeout=STOP_WAIT_S)
        try:
            sender, self._sender = self._sender, None
            engine, self._engine = self._engine, None
            if sender is not None:
                sender.close()
            if engine is not None:
                engine.close()
            if self._nested is not None:
                self._nested.close()
            if acquired and self._builder is not None:
                self._builder.close()  # (not while a write may still be using it)
        finally:
            if acquired:
                self._busy.release()

    @property
    def engine_kind(self) -> str | None:
        """``elasticsearch`` or ``opensearch`` once started (detected with ``engine: auto``)."""
        return self._engine.kind if self._engine else None

    @property
    def bulk_retries(self) -> int:
        """Rounds of bulk retries so far (grows while a flush waits for the engine)."""
        return self._sender.retries if self._sender else 0

    def metrics(self) -> dict[str, Any]:
        """Counters and rates: documents/s, bulk latency, lag in records and seconds."""
        sender = self._sender
        return self.stats.snapshot(
            self._flushed, self.context.log,
            latencies=sender.latencies() if sender else [],
            requests=sender.requests if sender else 0,
            bytes_sent=sender.bytes_sent if sender else 0,
        )

    # -- write: records into operations ----------------------------------------------------

    def _add(self, record: LogRecord) -> None:
        if record.value is None:
            return  # a tombstone: the delete event before it did the work
        try:
            event = decode_value(record.value)
        except ValueError as exc:
            raise BadRecordError(f"the value is not JSON: {exc}") from None
        if not isinstance(event, dict) or event.get("op") not in ("c", "u", "r", "d", "t"):
            raise BadRecordError("the value is not a change event (no op c/u/r/d/t)")
        assert self._indexes is not None
        index = self._indexes.name_for(record.topic, event.get("source"))
        op = event["op"]
        if op == "t":
            self._send_pending()
            self._indexes.truncate(index, version_of(record))
            self.stats.truncates += 1
            return
        try:
            key = decode_key(record.key)
        except ValueError as exc:
            raise BadRecordError(f"the key is not JSON: {exc}") from None
        if not isinstance(key, dict):
            raise BadRecordError("the record has no primary key (its key is not a JSON object)")
        doc_id = document_id(key)
        row = event.get("after") if op != "d" else None
        if row is not None and not isinstance(row, dict):
            raise BadRecordError("the event's 'after' is not an object")
        version = version_of(record)
        if row is not None and self._transform.keeps(row):
            # The row was decoded for this record alone: without transforms it is the body.
            body = row if self._transform.is_identity else self._transform.apply(row)
            if self.config.version_field:
                body[self.config.version_field] = version
            action = Action("index", index, doc_id, version, body)
        else:
            action = Action("delete", index, doc_id, version)
        self._pending[(index, doc_id)] = (action, record)

    def _write_columnar(self, records: Sequence[LogRecord]) -> bool:
        """Take ``records`` as a batch of bulk lines (:mod:`.columnar`); False, with nothing
        changed, when the batch needs the per-record path."""
        builder, indexes = self._builder, self._indexes
        if builder is None or indexes is None:
            return False
        # Each partition's first and last offset in the batch (the log hands them over in
        # offset order); the usual batch is of one partition: no loop over its records.
        partitions: set[tuple[str, int]] = set(map(_TOPIC_PARTITION, records))
        firsts: dict[tuple[str, int], int] = {}
        lasts: dict[tuple[str, int], int] = {}
        if len(partitions) == 1:
            where = partitions.pop()
            firsts[where] = records[0].offset
            lasts[where] = records[-1].offset
        else:
            for record in records:
                where = (record.topic, record.partition)
                if where not in firsts:
                    firsts[where] = record.offset
                lasts[where] = record.offset
        next_offsets = self._next
        for where, first in firsts.items():
            last = next_offsets.get(where)  # type: ignore[call-overload]
            if last is not None and first < last:
                return False  # a replay of records sent in this run: skipped record by record
        lines = builder.build(records, indexes.name_for)
        if lines is None:
            return False
        for name in set(lines.indexes.unique().to_pylist()):
            if not indexes.is_ready(name):
                return False  # a new index's mappings are inferred from its first documents
        for where, last in lasts.items():
            if where in next_offsets:
                next_offsets[where] = last + 1
            else:
                next_offsets[TopicPartition(*where)] = last + 1
        self.stats.records += len(records)
        self.stats.columnar += len(records)
        self._lines = lines if self._lines is None else self._lines.concat(lines)
        self._send_lines(whole=False)
        return True

    def _dead_letter(self, record: LogRecord, reason: str) -> None:
        self.stats.dead_letters += 1
        self.context.dead_letter(record, reason)

    # -- flush: operations into the engine -------------------------------------------------

    def _send_pending(self, wait: bool = True) -> None:
        """Send the pending operations in the background; then wait for all bulks in flight
        (``wait``), or only until no more than ``concurrency`` are."""
        assert self._sender is not None
        if self._pending:
            pending = list(self._pending.values())
            self._pending.clear()
            actions = [a for a, _ in pending]
            self._ensure_indexes(actions)
            self._in_flight.append((self._sender.submit(actions), actions,
                                    lambda: {id(a): r for a, r in pending}))
        if wait:
            self._send_lines(whole=True)
        self._wait(0 if wait else self.config.concurrency)

    def _send_lines(self, whole: bool) -> None:
        """Send the columnar path's pending lines in bulks of ``bulk_actions`` (fewer where
        ``bulk_bytes`` would be passed: cut as :func:`.bulk.split` cuts), keeping no more
        than ``concurrency`` in flight; the last part too if ``whole``, else it waits for
        more lines."""
        lines = self._lines
        if lines is None:
            return
        assert self._sender is not None
        size, cap = self.config.bulk_actions, self.config.bulk_bytes
        offsets = lines.byte_offsets()
        count = len(lines)
        start = 0
        while count - start >= size or (whole and start < count):
            stop = min(start + size, count)
            if offsets[stop] - offsets[start] > cap:
                # as many as fit in cap bytes; one oversized document goes alone
                stop = max(start + 1, bisect_right(offsets, offsets[start] + cap, start, stop) - 1)
            bulk = lines.slice(start, stop).prepared()
            self._in_flight.append((self._sender.submit_prepared(bulk), (),
                                    _records_of(bulk)))
            start = stop
            self._wait(self.config.concurrency)
        self._lines = lines.slice(start, count) if start < count else None

    def _wait(self, limit: int) -> None:
        """Settle bulks in flight, oldest first, until no more than ``limit`` are."""
        while len(self._in_flight) > limit:
            future, actions, records = self._in_flight.popleft()
            self._settle(actions, records, future.result)

    def _send_nested(self) -> None:
        assert self._nested is not None and self._indexes is not None
        pairs = self._nested.actions(self._indexes.name_for)
        actions = [a for a, _ in pairs]
        assert self._sender is not None
        sender = self._sender
        self._ensure_indexes(actions)
        self._settle(actions, lambda: {id(a): r for a, r in pairs},
                     lambda: sender.send(actions))
        self._nested.commit(self._next)

    def _ensure_indexes(self, actions: list[Action]) -> None:
        assert self._indexes is not None
        indexes = self._indexes
        # Mappings are inferred from all of a new index's documents in this bulk, so a column
        # null in the first row, or digits in one row and words in the next, is seen right.
        fresh: dict[str, list[dict[str, Any]]] = {}
        for action in actions:
            if action.op == "index" and action.body is not None \
                    and not indexes.is_ready(action.index):
                fresh.setdefault(action.index, []).append(action.body)
        deadline = time.monotonic() + self.config.retry_timeout_s
        delay = BACKOFF_FIRST_S
        for index, documents in fresh.items():
            # Retried like a bulk: creating an index is slow on a loaded node and may time
            # out (a creation that went through after all is then found to exist).
            while True:
                try:
                    indexes.ensure(index, documents)
                    break
                except EngineUnavailableError as exc:
                    if time.monotonic() + delay > deadline or self._stopping.wait(
                        delay * random.uniform(0.5, 1.0)
                    ):
                        raise RetriableError(f"search sink {self.config.name!r}: {exc}") from exc
                    delay = min(delay * 2, BACKOFF_MAX_S)
                except EngineRequestError as exc:
                    raise FatalError(f"search sink {self.config.name!r}: {exc}") from exc

    def _settle(
        self, actions: Sequence[Action], records_of: Callable[[], Mapping[int, LogRecord]],
        outcome: Callable[[], BulkResult],
    ) -> None:
        """Count a send's outcome and hand its rejected documents to the dead-letter topic."""
        try:
            result = outcome()
        except EngineUnavailableError as exc:
            raise RetriableError(f"search sink {self.config.name!r}: {exc}") from exc
        except EngineRequestError as exc:
            raise FatalError(f"search sink {self.config.name!r}: {exc}") from exc
        except SenderStoppedError as exc:
            raise RetriableError(f"search sink {self.config.name!r} stopped") from exc
        self.stats.sent(actions, result)
        if not result.rejected:
            return
        # Which record made a rejected document: looked up only when there is one.
        records = records_of()
        for action, reason in result.rejected:
            self._dead_letter(records[id(action)], f"{self.config.type} rejected the "
                              f"document {action.index}/{action.doc_id}: {reason}")

    def _guard(self, doing: str) -> _Guard:
        return _Guard(self, doing)


def _records_of(bulk: PreparedBulk) -> Callable[[], Mapping[int, LogRecord]]:
    return lambda: bulk.records


class _Guard:
    """Holds the sink's busy lock for a write or flush, refusing work after stop."""

    def __init__(self, sink: SearchSink, doing: str) -> None:
        self._sink = sink
        self._doing = doing

    def __enter__(self) -> None:
        sink = self._sink
        sink._busy.acquire()
        if sink._stopping.is_set() or sink._sender is None:
            sink._busy.release()
            raise RetriableError(
                f"search sink {sink.config.name!r}: {self._doing} after stop() or before "
                "start()"
            )

    def __exit__(self, *exc: object) -> None:
        self._sink._busy.release()
