"""``PostgresSource``: the coordinator — snapshot, then stream, exactly once into the log.

As Debezium's ``ChangeEventSourceCoordinator``: one snapshot part (``snapshot.py``), one
streaming part (``streaming.py`` fed by ``replication.py``), one offset context
(``checkpoint.py``). ``start`` checks the tables and the publication and decides the plan;
a reader thread then creates the slot if needed, runs the snapshot and streams, handing
finished batches to the hub's thread through a bounded queue (``handoff.py``): receiving,
decoding and encoding overlap with the hub's appends and fsyncs, and memory stays bounded.

Exactly once: every batch comes with the checkpoint after it (``checkpoint.py``); the hub
appends both atomically and then calls :meth:`PostgresSource.committed`, the only place
that moves the slot's confirmed flush position (sent to the server by the reader with its
next status update). After a crash the source starts from the checkpoint in the log: the
slot resends from its confirmed position, and what the log holds already is skipped.

Plans by snapshot mode (``cp``: a checkpoint in the log; ``slot``: the slot exists):

=============  ================================  =========================================
mode           first start (no cp)               later starts
=============  ================================  =========================================
initial        new slot + exact snapshot          resume an unfinished snapshot; stream
never          new slot (or the existing one)     stream
always         new slot + exact snapshot          snapshot in a new transaction, then stream
                                                  from cp (see ``snapshot.py``)
initial_only   snapshot, no slot                  finish an unfinished snapshot; then idle
=============  ================================  =========================================

A checkpoint whose slot has disappeared means lost changes: the source fails and says how to
re-sync, except in mode ``always``, which re-snapshots anyway.

Large transactions: with protocol 1, Postgres sends a transaction once it commits, in
commit order. Protocol 2 can also stream a large transaction while it still runs
(``streaming 'on'``); this source does not ask for that. The log may only ever hold
committed changes (what a reader has seen is never taken back), so streamed changes would
have to be spooled to disk here until their commit or abort — the work Postgres does anyway
when a transaction outgrows ``logical_decoding_work_mem`` (it spills to ``pg_replslot``),
moved across the network, aborted work included. Instead a committed transaction larger
than a batch is split across batches (``checkpoint.py``): memory stays bounded whatever the
size of the transaction. The decoder knows protocol 2's stream messages (``pgoutput.py``);
receiving one fails clearly.

Connection loss (Postgres restarting, network): the reader fails with
:class:`RetriableError`; the hub backs off and restarts the source from its checkpoint, which
resumes from the slot. Slot lag is measured at every heartbeat (:attr:`lag`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from connectors.api import ConnectorContext, Source, SourceBatch, SourceConfig
from connectors.envelope import topic_name
from connectors.lag import DurableTime
from connectors.source.postgres.catalog import (
    TableInfo,
    catalog_error,
    connect,
    current_wal_lsn,
    estimated_rows,
    load_types,
    session_conninfo,
    snapshot_visibility,
    table_info,
)
from connectors.source.postgres.checkpoint import (
    Checkpoint,
    IncrementalProgress,
    SnapshotProgress,
)
from connectors.source.postgres.config import PostgresSourceConfig
from connectors.source.postgres.handoff import HandOff, HandOffClosedError, Waker
from connectors.source.postgres.heartbeat import (
    Heartbeat,
    LagGuard,
    SlotLag,
    emit_heartbeat_message,
    measure_lag,
)
from connectors.source.postgres.incremental_snapshot import IncrementalSnapshot
from connectors.source.postgres.pgoutput import Relation
from connectors.source.postgres.publication import ensure_publication
from connectors.source.postgres.replication import (
    KEEPALIVE,
    XLOGDATA,
    ReceiveDeadline,
    ReplicationConnection,
    parse_keepalive,
)
from connectors.source.postgres.resume import (
    ReadRange,
    SnapshotVisibility,
    add_range,
    key_orderable,
)
from connectors.source.postgres.schema import TableSchema, choose_key
from connectors.source.postgres.slot import check_usable, drop_slot, read_slot
from connectors.source.postgres.snapshot import read_snapshot
from connectors.source.postgres.streaming import ChangeStream
from connectors.source.postgres.toast import ToastImages
from connectors.source.postgres.types import TypeMap
from hub.errors import FatalError, SchemaError

__all__ = ["PostgresSource", "PostgresSourceConfig"]

PROTOCOL_VERSION = 1
HANDOFF_DEPTH = 4
# While messages keep coming, look whether the hub's thread waits for a batch (and read the
# clock for the events' ts_ms) this often. A hub that finished its append while the reader
# works through a backlog waits for up to this many messages' decoding before it gets the
# changes received so far (what it gathered during its fsync): 256 messages are ~4 ms of
# reader time at the ~15 µs a message of single-row transactions (Begin, Insert, Commit)
# takes here, all of it added to commit-to-log; 16 are ~0.25 ms, for a clock read and two
# attribute reads every 16 messages. Batch sizes stay those of group commit.
_CHECK_TAKER_EVERY = 16


def _lag_position(checkpoint: Mapping[str, Any]) -> tuple[int, int, int]:
    """A checkpoint's place in the stream, ordered (inside a split transaction too)."""
    txn = checkpoint.get("txn") or {}
    return int(checkpoint["lsn"]), int(txn.get("commit_lsn", 0)), int(txn.get("events", 0))


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Plan:
    """What the reader does before streaming (decided in ``start``)."""

    checkpoint: Checkpoint  # where to start; lsn 0 = the new slot's consistent point
    drop_slot: bool = False
    create_slot: bool = False
    exact_snapshot: bool = False  # snapshot in the new slot's exported snapshot
    snapshot: bool = False
    stream: bool = True


class PostgresSource(Source[PostgresSourceConfig]):
    config_model: ClassVar[type[SourceConfig]] = PostgresSourceConfig

    def __init__(self, config: PostgresSourceConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self._log = context.logger or logging.getLogger(f"changehub.source.{config.name}")
        self._stop = Waker()
        self._nudge = Waker()
        self._handoff = HandOff(HANDOFF_DEPTH, on_taker=self._nudge.wake)
        self._confirmed = 0  # the slot may confirm up to here (set by committed)
        self._shipped = 0  # batches handed over
        self._appended = 0  # batches the hub confirmed (committed calls)
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._catalog: psycopg.Connection[Any] | None = None
        self._repl: ReplicationConnection | None = None
        self._incremental: IncrementalSnapshot | None = None
        self._empty_log = True  # no checkpoint at start: the log holds nothing of ours
        self._tables: dict[str, tuple[TableInfo, TableSchema]] = {}
        self._db = ""
        self._types = TypeMap()
        self.lag: SlotLag | None = None  # the last measurement, for metrics
        self._durable = DurableTime()  # commit time of the last durable change (lag_seconds)
        self._idle = False  # the reader waits at the stream's end with nothing buffered
        self._caught_up_ms = 0  # when the reader last waited there with everything durable

    # -- the Source interface -----------------------------------------------------------------

    def start(self, checkpoint: Mapping[str, Any] | None) -> None:
        config = self.config
        cp = None if checkpoint is None else Checkpoint.from_dict(checkpoint, config.name)
        self._empty_log = cp is None
        catalog = connect(config.dsn, application_name=f"changehub {config.name}")
        self._catalog = catalog
        self._db = catalog.info.dbname
        self._types = TypeMap(self._load_types)
        try:
            for name in config.table_names:
                info = table_info(catalog, name.schema, name.table)
                key = choose_key(
                    name,
                    info.columns,
                    configured=config.key_columns.get(name),
                    primary_key=info.primary_key,
                    identity=info.identity,
                    identity_index=info.identity_index,
                )
                schema = TableSchema.from_catalog(
                    info, source_name=config.name, db=self._db, types=self._types, key=key
                )
                self._tables[name] = (info, schema)
            if config.snapshot != "initial_only":
                ensure_publication(catalog, config.publication_name, config.table_names)
            plan = self._plan(cp)
        except psycopg.Error as exc:
            raise catalog_error(exc, "checking the tables to capture") from None
        self._log.info("postgres source %s: %s", config.name, _describe(plan, config.slot))
        self._repl = ReplicationConnection(
            config.dsn,
            stop=self._stop,
            wakers=[self._nudge],
            application_name=f"changehub {config.name}",
        )
        try:
            position, snapshot = self._prepare(plan)
        except BaseException:
            self._close_connections()
            raise
        self._thread = threading.Thread(
            target=self._run,
            args=(plan, position, snapshot),
            name=f"pg-reader-{config.name}",
            daemon=True,
        )
        self._thread.start()

    def _prepare(
        self, plan: Plan
    ) -> tuple[Checkpoint, tuple[psycopg.Connection[Any], SnapshotProgress] | None]:
        """The slot work and the snapshot's transaction, done before ``start`` returns, so
        that every change committed after ``start`` is captured."""
        assert self._catalog is not None and self._repl is not None
        position = plan.checkpoint
        snapshot_name: str | None = None
        if plan.drop_slot:
            drop_slot(self._catalog, self.config.slot)
        if plan.create_slot:
            self._repl.connect()
            created = self._repl.create_slot(self.config.slot, export_snapshot=plan.exact_snapshot)
            position = position.with_(lsn=created.consistent_point)
            snapshot_name = created.snapshot_name
            self._log.info(
                "created replication slot %s at %s", created.name, created.consistent_point
            )
        if not plan.snapshot:
            return position, None
        position, conn, progress = self._open_snapshot(
            position, snapshot_name, exact=plan.exact_snapshot
        )
        return position, (conn, progress)

    def poll(self, timeout: float) -> SourceBatch | None:
        return self._handoff.take(timeout)

    def committed(self, checkpoint: Mapping[str, Any]) -> None:
        self._durable.committed(_lag_position(checkpoint))
        lsn = int(checkpoint["lsn"])
        with self._progress:
            self._confirmed = max(self._confirmed, lsn)
            self._appended += 1
            self._progress.notify_all()
        self._nudge.wake()  # send the new position to the server now

    def metrics(self) -> dict[str, float]:
        """``lag_seconds``: 0 while the reader waits at the stream's end with everything it
        handed over durable; otherwise now minus the commit time of the last change the log
        made durable. (Bytes: :attr:`lag`, measured at heartbeats.)"""
        if self._idle and not self._durable.unsaved:
            return {"lag_seconds": 0.0}
        # Caught up at _caught_up_ms: every change committed before then was durable, even
        # if no batch since the snapshot carried a commit time (no heartbeat made durable
        # yet, e.g. the hub paused the source right after it went idle).
        durable_ms = max(self._durable.ts_ms or 0, self._caught_up_ms)
        if not durable_ms:
            return {}
        return {"lag_seconds": max(0.0, (_now_ms() - durable_ms) / 1000)}

    def stop(self) -> None:
        self._stopping = True
        self._handoff.close()
        self._stop.wake()
        with self._progress:
            self._progress.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        if thread is not None and thread.is_alive():
            return  # still unwinding: it closes its connections itself
        catalog, self._catalog = self._catalog, None
        if catalog is not None:
            catalog.close()
        self._stop.close()
        self._nudge.close()

    def topics(self) -> list[str]:
        return [topic_name(self.config.name, t.schema, t.table) for t in self.config.table_names]

    # -- planning -----------------------------------------------------------------------------

    def _plan(self, cp: Checkpoint | None) -> Plan:
        config = self.config
        tables = tuple(config.tables)
        if config.snapshot == "initial_only":
            if cp is None:
                return Plan(Checkpoint(0, tables=tables), snapshot=True, stream=False)
            return Plan(cp, snapshot=cp.snapshot is not None, stream=False)
        assert self._catalog is not None
        slot = read_slot(self._catalog, config.slot)
        if slot is not None:
            check_usable(slot, self._db)
        fresh = Checkpoint(0, tables=tables)
        if cp is None:
            if config.snapshot == "never":
                if slot is not None:
                    assert slot.confirmed_flush_lsn is not None
                    return Plan(Checkpoint(slot.confirmed_flush_lsn, tables=tables))
                return Plan(fresh, create_slot=True)
            # Nothing in the log: a leftover slot's position means nothing to us.
            return Plan(
                fresh,
                drop_slot=slot is not None,
                create_slot=True,
                exact_snapshot=True,
                snapshot=True,
            )
        if slot is None:
            if config.snapshot == "always":
                return Plan(fresh, create_slot=True, exact_snapshot=True, snapshot=True)
            raise FatalError(
                f"replication slot {config.slot} does not exist any more (dropped, or "
                "invalidated by max_slot_wal_keep_size), so the changes after LSN "
                f"{cp.lsn:X} are lost. To capture again from a fresh snapshot, start this "
                "source once with `snapshot: always`, or reset it (changehub reset)"
            )
        cp = self._queue_new_tables(cp)
        if cp.snapshot is not None:
            return Plan(cp, snapshot=True)
        if config.snapshot == "always":
            return Plan(cp, snapshot=True)
        return Plan(cp)

    def _queue_new_tables(self, cp: Checkpoint) -> Checkpoint:
        """Tables added to the config since ``cp``: read by an incremental snapshot."""
        config = self.config
        new = [t for t in config.tables if t not in cp.tables]
        cp = cp.with_(tables=tuple(config.tables))
        if not new or config.snapshot in ("never", "always"):
            return cp  # never: nothing to read; always: everything is read anyway
        progress = cp.incremental or IncrementalProgress()
        queued = tuple(t for t in new if t not in progress.pending)
        self._log.info("new tables %s: an incremental snapshot reads them", ", ".join(new))
        return cp.with_(incremental=replace(progress, pending=progress.pending + queued))

    # -- the reader thread --------------------------------------------------------------------

    def _run(
        self,
        plan: Plan,
        position: Checkpoint,
        snapshot: tuple[psycopg.Connection[Any], SnapshotProgress] | None,
    ) -> None:
        assert self._repl is not None
        try:
            if snapshot is not None:
                position = self._read_snapshot(position, *snapshot)
            if plan.stream:
                self._stream(self._repl, position)
        except HandOffClosedError:
            pass
        except BaseException as exc:
            if not self._stopping:
                error = exc
                if isinstance(exc, psycopg.Error):
                    error = catalog_error(exc, "streaming changes")
                elif not isinstance(exc, Exception):
                    error = FatalError(f"reader thread died: {exc!r}")
                with contextlib.suppress(HandOffClosedError):
                    self._handoff.put(error)
        finally:
            if snapshot is not None:
                snapshot[0].close()
            if self._incremental is not None:
                self._incremental.close()
            self._repl.close()

    def _close_connections(self) -> None:
        if self._repl is not None:
            self._repl.close()
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    def _ship(
        self,
        batch: SourceBatch,
        repl: ReplicationConnection | None = None,
        *,
        merge: bool = False,
        nbytes: int = 0,
    ) -> None:
        """Hand a batch (of about ``nbytes``) over: with ``merge``, into the batch still
        waiting for the hub if both fit in one (so the hub takes them at once), else queued;
        while the queue is full, keep the walsender's timeout at bay."""
        config = self.config
        handoff = self._handoff
        if merge and handoff.merge(batch, nbytes, config.max_batch_events, config.max_batch_bytes):
            return  # part of a batch counted already
        while not handoff.put(batch, timeout=config.status_interval / 1000, nbytes=nbytes):
            if repl is not None and repl.copying:
                self._send_status(repl)
        self._shipped += 1

    def _drain(self) -> None:
        """Wait until the hub appended every batch handed over (for TOAST lookups)."""
        with self._progress:
            while self._appended < self._shipped and not self._stopping:
                self._progress.wait(1.0)
        if self._stopping:
            raise HandOffClosedError

    # -- snapshot -----------------------------------------------------------------------------

    def _open_snapshot(
        self, position: Checkpoint, snapshot_name: str | None, *, exact: bool
    ) -> tuple[Checkpoint, psycopg.Connection[Any], SnapshotProgress]:
        """The snapshot's transaction, the progress to continue from, and the position (with
        the ranges a snapshot in a new transaction reads, see resume.py)."""
        config = self.config
        assert self._catalog is not None
        progress = position.snapshot
        if progress is None:
            # A new snapshot: the first, or one of mode `always` with the log holding more.
            stamp = position.lsn if exact else current_wal_lsn(self._catalog)
            progress = SnapshotProgress(stamp, exact, tuple(config.tables), first=self._empty_log)
        elif not exact:
            # An interrupted snapshot, read on in a new one. Stamped before it is taken:
            # every change it does not contain commits later.
            progress = replace(progress, lsn=current_wal_lsn(self._catalog), exact=False)
        conn = psycopg.connect(
            session_conninfo(config.dsn, application_name=f"changehub {config.name} snapshot")
        )
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            if snapshot_name is not None:
                conn.execute(
                    sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_name))
                )
            else:
                visibility = SnapshotVisibility.parse(snapshot_visibility(conn))  # taken now
                if progress.first and self.config.snapshot != "initial_only":
                    until = current_wal_lsn(conn)
                    ranges = self._read_ranges(position.resumed, progress, visibility, until)
                    position = position.with_(resumed=ranges)
        except psycopg.Error as exc:
            conn.close()
            raise catalog_error(exc, "starting the snapshot") from None
        self._log.info(
            "snapshot of %s started (%s)",
            ", ".join(progress.pending),
            "exact, in the slot's exported snapshot"
            if exact
            else f"in a new snapshot, events stamped at LSN {progress.lsn:X}",
        )
        return position, conn, progress

    def _read_ranges(
        self,
        ranges: tuple[ReadRange, ...],
        progress: SnapshotProgress,
        visibility: SnapshotVisibility,
        until: int,
    ) -> tuple[ReadRange, ...]:
        """The key ranges this new snapshot reads, for the stream to skip what they contain."""
        for i, name in enumerate(progress.pending):
            after = progress.after if i == 0 else None
            info, schema = self._tables[name]
            if after is not None:
                assert schema.key_index is not None
                orderable = key_orderable(
                    [info.type_oids[k] for k in schema.key_index],
                    [info.collations[k] for k in schema.key_index],
                )
                if not orderable:
                    self._log.info(
                        "the key of %s cannot be compared outside Postgres: changes made to "
                        "its unread rows while the source was down may show up twice",
                        name,
                    )
                    continue
            ranges = add_range(ranges, ReadRange(name, after, visibility, until))
        return ranges

    def _read_snapshot(
        self, position: Checkpoint, conn: psycopg.Connection[Any], progress: SnapshotProgress
    ) -> Checkpoint:
        config = self.config
        assert self._catalog is not None
        try:
            estimates = {
                name: estimated_rows(self._catalog, self._tables[name][0].oid)
                for name in progress.pending
            }
            for chunk in read_snapshot(
                conn,
                progress=progress,
                tables={n: self._tables[n] for n in progress.pending},
                chunk_size=config.snapshot_chunk_size,
                clock_ms=_now_ms,
            ):
                position = position.with_(snapshot=None if chunk.done else chunk.progress)
                progress = chunk.progress
                self._ship(SourceBatch(chunk.records, position.to_dict()))
                self.context.progress(
                    f"snapshot {chunk.table}", chunk.table_rows, estimates.get(chunk.table)
                )
            conn.commit()
        except psycopg.Error as exc:
            raise catalog_error(exc, "reading the snapshot") from None
        self._log.info("snapshot finished: %d rows", progress.rows)
        return position

    # -- streaming ----------------------------------------------------------------------------

    def _stream(self, repl: ReplicationConnection, position: Checkpoint) -> None:
        config = self.config
        assert self._catalog is not None
        if not repl.connected:
            repl.connect()
        repl.start(
            config.slot,
            position.lsn,
            publication=config.publication_name,
            protocol_version=PROTOCOL_VERSION,
            messages=self._catalog.info.server_version >= 140000,  # the option is 14+
        )
        self._log.info("streaming from slot %s at LSN %X", config.slot, position.lsn)
        changes: ChangeStream
        toast = ToastImages(
            config.toast,
            log=self.context.log,
            partitions=self.context.topic_partitions,
            pending=lambda: changes.records,
            drain=self._drain,
        )
        incremental = IncrementalSnapshot(
            config=config, table=lambda name: self._tables[name], clock_ms=_now_ms
        )
        self._incremental = incremental
        changes = ChangeStream(
            start=position,
            schema_for=self._schema_for,
            toast=toast,
            on_message=incremental.on_message,
            clock_ms=_now_ms,
            protocol_version=PROTOCOL_VERSION,
        )
        incremental.start(changes)
        catalog = self._catalog
        receive_s = config.receive_timeout / 1000
        heartbeat = Heartbeat(
            config.heartbeat_interval,
            emit=(lambda: emit_heartbeat_message(catalog, receive_s))
            if config.heartbeat_action == "message"
            else None,
        )
        guard = LagGuard(config.max_lag_bytes, config.slot)
        status = _StatusClock(config.status_interval / 1000)
        deadline = ReceiveDeadline(receive_s)
        received = False  # messages came since the last idle moment
        awaiting_keepalive = False
        beat_pending = False  # a heartbeat moved the position: hand it over even if empty
        max_events, max_bytes = config.max_batch_events, config.max_batch_bytes
        feed, read = changes.feed, repl.read_nowait
        handoff = self._handoff
        countdown = _CHECK_TAKER_EVERY

        def ship() -> None:
            nonlocal beat_pending
            changes.tick()
            nbytes = changes.nbytes
            records, cp = changes.cut()
            batch = SourceBatch(records, cp.to_dict())
            # The commit time the batch reaches; none for a heartbeat: the reader was at
            # the end when it made it.
            txn = changes.txn
            ts = txn.commit_ms if txn is not None else changes.commit_ms
            self._idle = False
            self._durable.shipped(_lag_position(batch.checkpoint),
                                  ts if records and ts is not None else _now_ms(), bool(records))
            self._ship(batch, repl, merge=True, nbytes=nbytes)
            heartbeat.postpone()
            beat_pending = False

        while not self._stopping:
            message = read()
            if message is not None:
                received = True
                tag = message[0]
                if tag == XLOGDATA:
                    feed(message)
                    countdown -= 1
                    if countdown == 0:
                        countdown = _CHECK_TAKER_EVERY
                        changes.tick()
                        if changes.records and handoff.taker_waiting:
                            ship()  # the hub is idle: give it what there is
                    if len(changes.records) >= max_events or changes.nbytes >= max_bytes:
                        ship()
                elif tag == KEEPALIVE:
                    wal_end, reply = parse_keepalive(message)
                    status.received = max(status.received, wal_end)
                    if awaiting_keepalive and not changes.in_transaction:
                        awaiting_keepalive = False
                        beat_pending = changes.advance(wal_end) or beat_pending
                    if reply:
                        self._send_status(repl, status)
                continue
            # Nothing buffered: an idle moment. Hand over (to the hub waiting, or into the
            # batch waiting for it: see handoff.py), report, beat, then wait.
            if changes.records or beat_pending:
                ship()
            if received:
                received = False
                deadline.heard()
            self._idle = not changes.records and not changes.in_transaction
            if self._idle and not self._durable.unsaved:
                self._caught_up_ms = _now_ms()
            if self._confirmed > status.flushed or status.due():
                self._send_status(repl, status)
            if heartbeat.due():
                heartbeat.beat()
                awaiting_keepalive = True
                self._send_status(repl, status, reply=True)
                self.lag = measure_lag(catalog, config.slot, receive_s)
                guard.check(self.lag, lambda: self._drop_slot_now(repl))
            if deadline.ping_due():
                self._send_status(repl, status, reply=True)
                deadline.pinged()
            deadline.check()
            repl.wait(
                min(heartbeat.seconds_left(), status.seconds_left(), deadline.seconds_left())
            )
            self._nudge.clear()
            changes.tick()  # events received from here on were received now

    def _send_status(
        self,
        repl: ReplicationConnection,
        status: _StatusClock | None = None,
        *,
        reply: bool = False,
    ) -> None:
        flushed = self._confirmed
        written = max(flushed, status.received if status is not None else 0)
        repl.send_status(written=written, flushed=flushed, reply=reply)
        if status is not None:
            status.sent(flushed)

    def _drop_slot_now(self, repl: ReplicationConnection) -> None:
        assert self._catalog is not None
        repl.close()
        drop_slot(self._catalog, self.config.slot)

    def _schema_for(self, relation: Relation) -> TableSchema:
        qualified = f"{relation.namespace or 'pg_catalog'}.{relation.name}"
        columns = [c.name for c in relation.columns]
        assert self._catalog is not None
        try:
            info: TableInfo | None = table_info(self._catalog, relation.namespace, relation.name)
        except SchemaError:
            info = None  # dropped since: fall back to what the Relation message says
        flagged = tuple(c.name for c in relation.columns if c.is_key)
        primary_key = (
            info.primary_key
            if info is not None
            else (flagged if relation.replica_identity == "d" else ())
        )
        try:
            key = choose_key(
                qualified,
                columns,
                configured=self.config.key_columns.get(qualified),
                primary_key=primary_key,
                identity=relation.replica_identity,
                identity_index=flagged if relation.replica_identity == "i" else (),
            )
        except SchemaError:
            if qualified in self.config.tables:
                raise
            key = None  # a table added to the publication by hand: keyless events
        if qualified not in self.config.tables:
            self._log.info(
                "capturing %s too: it is in publication %s", qualified, self.config.publication_name
            )
        return TableSchema.from_relation(
            relation,
            source_name=self.config.name,
            db=self._db,
            types=self._types,
            key_for=lambda _: key,
        )

    def _load_types(self, oids: Any) -> Any:
        assert self._catalog is not None
        try:
            return load_types(self._catalog, oids)
        except psycopg.Error as exc:
            raise catalog_error(exc, "reading type definitions") from None


class _StatusClock:
    """When the next standby status update is due, and what the last one said."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.flushed = -1
        self.received = 0
        self._next = time.monotonic() + interval

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def seconds_left(self) -> float:
        return max(0.0, self._next - time.monotonic())

    def sent(self, flushed: int) -> None:
        self.flushed = flushed
        self._next = time.monotonic() + self.interval


def _describe(plan: Plan, slot: str) -> str:
    steps = []
    if plan.drop_slot:
        steps.append(f"drop stale slot {slot}")
    if plan.create_slot:
        steps.append(f"create slot {slot}")
    if plan.snapshot:
        steps.append("exact snapshot" if plan.exact_snapshot else "snapshot")
    if plan.stream:
        steps.append(
            "stream" + (f" from LSN {plan.checkpoint.lsn:X}" if plan.checkpoint.lsn else "")
        )
    return ", then ".join(steps)
