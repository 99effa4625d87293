"""``MySqlSource``: the coordinator — snapshot, then stream, exactly once into the log.

As Debezium's ``ChangeEventSourceCoordinator``: a snapshot part (:mod:`snapshot`), a
streaming part (:mod:`streaming` fed by :mod:`binlog`), an offset context (:mod:`checkpoint`).
``start`` checks the server (:mod:`doctor`), decides the plan and opens the snapshot's
transaction, so that every change committed after ``start`` returns is captured. A reader
thread then reads the snapshot and streams, handing chunks to the hub's thread through a
bounded queue (:mod:`handoff`).

Plans by snapshot mode (``cp``: a checkpoint in the log):

=============  ===============================  ==========================================
mode           first start (no cp)              later starts
=============  ===============================  ==========================================
initial        snapshot at P, stream from P     finish an unfinished snapshot; stream
never          stream from the current end      stream from cp
always         snapshot at P, stream from P     snapshot again, then stream from cp
initial_only   snapshot, no stream              finish an unfinished snapshot; then idle
=============  ===============================  ==========================================

Hand-over without gap or duplicate: the snapshot's transaction sees exactly the
transactions up to P (MariaDB reports P for the snapshot itself; MySQL takes it under a
brief global read lock), and streaming starts at P. A snapshot interrupted by a crash goes on
after its last chunk in a *new* transaction at P2; the stream then starts at the original P
and leaves out, up to P2, the changes to rows that the new transaction reads (a
:class:`~connectors.source.mysql.checkpoint.Replay`), so each change is still in the log
once. ``always`` on a later start re-reads the tables and then replays the stream from the
checkpoint unfiltered: rows converge to the table's state, but changes between the
checkpoint and the new snapshot may appear both as events and in the snapshot.

The binlog is not held back by readers, so :meth:`committed` releases nothing upstream; the
checkpoint in the log is what a restart resumes from.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from pymysqlreplication.event import HeartbeatLogEvent

from connectors.api import ConnectorContext, Source, SourceBatch, SourceConfig
from connectors.envelope import topic_name
from connectors.source.mysql.binlog import BinlogStream, ConnectionLostError, StreamStoppedError
from connectors.source.mysql.checkpoint import Checkpoint, Position, Replay, SnapshotProgress
from connectors.source.mysql.config import MySqlSourceConfig
from connectors.source.mysql.doctor import check_server
from connectors.source.mysql.handoff import HandOff, HandOffClosedError
from connectors.source.mysql.heartbeat import Heartbeat
from connectors.source.mysql.history import SchemaHistory
from connectors.source.mysql.incremental_snapshot import IncrementalSnapshot
from connectors.source.mysql.lag import LagMeter
from connectors.source.mysql.schema import Catalog, TableSchema
from connectors.source.mysql.server import (
    Connection,
    connect,
    current_position,
    is_mariadb,
    variables,
)
from connectors.source.mysql.snapshot import estimated_rows, open_snapshot, read_table
from connectors.source.mysql.streaming import ChangeStream, Chunk
from hub.errors import FatalError, SchemaError

__all__ = ["MySqlSource", "MySqlSourceConfig"]


def _now_ms() -> int:
    return int(time.time() * 1000)


class MySqlSource(Source[MySqlSourceConfig]):
    config_model: ClassVar[type[SourceConfig]] = MySqlSourceConfig

    def __init__(self, config: MySqlSourceConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self._log = context.logger or logging.getLogger(f"changehub.source.{config.name}")
        self._handoff = HandOff(config.queue_events, config.max_batch_events)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._ctl: Connection | None = None
        self._snapshot_conn: Connection | None = None
        self._binlog: BinlogStream | None = None
        self._snapshots: IncrementalSnapshot | None = None
        self._keep_history = False
        self._resumed = False
        self._tables: list[TableSchema] = []
        self._catalog: Catalog | None = None
        self._mariadb = False
        self.stream: ChangeStream | None = None  # for metrics and tests
        self.last_committed: dict[str, Any] | None = None
        self._lag = LagMeter(_now_ms)
        self._metrics_conn: Connection | None = None
        self._metrics_lock = threading.Lock()

    # -- the Source interface -----------------------------------------------------------------

    def start(self, checkpoint: Mapping[str, Any] | None) -> None:
        config = self.config
        cp = None if checkpoint is None else Checkpoint.from_dict(checkpoint, config.name)
        self._resumed = cp is not None
        settings = dict(config.connection())
        ctl = connect(settings, f"source {config.name}: connecting")
        self._ctl = ctl
        try:
            self._mariadb = config.flavor == "mariadb" or (
                config.flavor == "auto" and is_mariadb(ctl)
            )
            errors = [f for f in check_server(ctl, config) if f.level == "error"]
            if errors:
                raise FatalError(
                    f"source {config.name}: the server is not ready for binlog capture:\n"
                    + "\n".join(str(f) for f in errors)
                )
            catalog = Catalog(ctl, config.name, reconnect=lambda: connect(settings, "reconnecting"))
            self._catalog = catalog
            self._tables = self._captured_tables(catalog)
            metadata = variables(ctl, "binlog_row_metadata")["binlog_row_metadata"]
            # Without column names in the binlog, keep a schema history (see history.py).
            self._keep_history = (metadata or "").upper() != "FULL"
            start, snapshot = self._plan(cp, settings)
            # Streaming from the server's current end ("never", first start): caught up now.
            self._lag.started(start.position, _now_ms() if cp is None and snapshot is None
                              else None)
        except BaseException:
            self._close()
            raise
        self._thread = threading.Thread(
            target=self._run,
            args=(start, snapshot, catalog),
            name=f"mysql-reader-{config.name}",
            daemon=True,
        )
        self._thread.start()

    def poll(self, timeout: float) -> SourceBatch | None:
        try:
            return self._handoff.take(timeout)
        except HandOffClosedError:
            return None

    def committed(self, checkpoint: Mapping[str, Any]) -> None:
        self.last_committed = dict(checkpoint)
        self._lag.committed(checkpoint)

    def metrics(self) -> dict[str, float]:
        """``lag_bytes`` / ``lag_seconds`` behind the server's binlog (see :mod:`lag`), on a
        connection of its own: the control connection belongs to the reader thread."""
        with self._metrics_lock:
            if self._stopping:
                return {}
            if self._metrics_conn is None:
                self._metrics_conn = connect(dict(self.config.connection()), "measuring lag")
            try:
                with self._metrics_conn.cursor() as cur:
                    cur.execute("SHOW BINARY LOGS")
                    logs = [(str(row[0]), int(row[1])) for row in cur.fetchall()]
            except Exception:
                conn, self._metrics_conn = self._metrics_conn, None
                with contextlib.suppress(Exception):
                    conn.close()
                raise
        return self._lag.measure(logs)

    def stop(self) -> None:
        self._stopping = True
        self._handoff.close()
        binlog = self._binlog
        if binlog is not None:
            binlog.interrupt()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        if thread is None or not thread.is_alive():
            self._close()

    def topics(self) -> list[str]:
        return [t.topic for t in self._tables]

    # -- planning -----------------------------------------------------------------------------

    def _captured_tables(self, catalog: Catalog) -> list[TableSchema]:
        names: list[tuple[str, str]] = []
        for db in self.config.databases:
            names += [(db, t) for t in catalog.tables_of(db) if self.config.captures(db, t)]
        for qualified in self.config.tables:
            db, table = qualified.split(".", 1)
            if (db, table) not in names:
                names.append((db, table))
        tables = []
        for db, table in names:
            schema = catalog.table(db, table)
            if schema is None:
                raise SchemaError(
                    f"source {self.config.name}: table {db}.{table} does not exist (or the user "
                    "cannot see it): create it, or remove it from `tables`"
                )
            tables.append(schema)
        return tables

    def _plan(
        self, cp: Checkpoint | None, settings: dict[str, Any]
    ) -> tuple[Checkpoint, tuple[Checkpoint, SnapshotProgress] | None]:
        """(where streaming starts, (the checkpoint stamping snapshot chunks, progress))."""
        mode = self.config.snapshot
        all_tables = tuple(f"{t.db}.{t.table}" for t in self._tables)
        if cp is None:
            if mode == "never":
                assert self._ctl is not None
                start = Checkpoint(current_position(self._ctl, self._mariadb))
                self._log.info("mysql source %s: streaming from %s", self.config.name, start)
                return start, None
            at = self._open_snapshot(settings)
            start = Checkpoint(at)
            self._log.info("mysql source %s: snapshot at %s, then stream", self.config.name, at)
            return start, (start, SnapshotProgress(all_tables))
        if cp.snapshot is not None:
            at = self._open_snapshot(settings)
            pending = cp.snapshot.pending
            regions = {t: (cp.snapshot.after if i == 0 else None) for i, t in enumerate(pending)}
            start = cp.with_(snapshot=None, replays=(*cp.replays, Replay(at, regions)))
            self._log.info(
                "mysql source %s: resuming the snapshot (%s) in a new transaction at %s",
                self.config.name,
                ", ".join(pending),
                at,
            )
            return start, (start, cp.snapshot)
        if mode == "always":
            at = self._open_snapshot(settings)
            self._log.info("mysql source %s: snapshot again at %s", self.config.name, at)
            return cp, (cp, SnapshotProgress(all_tables))
        return cp, None

    def _open_snapshot(self, settings: dict[str, Any]) -> Position:
        conn = connect(settings, f"source {self.config.name}: connecting for the snapshot")
        self._snapshot_conn = conn
        return open_snapshot(conn, self._mariadb)

    # -- the reader thread --------------------------------------------------------------------

    def _run(
        self,
        start: Checkpoint,
        snapshot: tuple[Checkpoint, SnapshotProgress] | None,
        catalog: Catalog,
    ) -> None:
        try:
            if snapshot is not None:
                self._read_snapshot(*snapshot, catalog)
            if self.config.snapshot != "initial_only":
                self._stream(start, catalog)
        except (HandOffClosedError, StreamStoppedError):
            pass
        except BaseException as exc:
            if not self._stopping:
                error = exc if isinstance(exc, Exception) else FatalError(f"reader died: {exc!r}")
                with contextlib.suppress(HandOffClosedError):
                    self._handoff.put(error)
        finally:
            if self._binlog is not None:
                self._binlog.close()
            if self._snapshots is not None:
                self._snapshots.close()

    def _put(self, chunk: Chunk) -> None:
        while not self._handoff.put(chunk, timeout=1.0):
            pass

    def _read_snapshot(
        self, stamp: Checkpoint, progress: SnapshotProgress, catalog: Catalog
    ) -> None:
        conn = self._snapshot_conn
        assert conn is not None
        at = stamp.position
        pending = list(progress.pending)
        after, rows = progress.after, progress.rows
        while pending:
            db, table = pending[0].split(".", 1)
            schema = catalog.table(db, table)
            estimate = estimated_rows(conn, db, table)
            table_rows = 0
            chunks = (
                read_table(
                    conn, schema, source_name=self.config.name, position=at, after=after,
                    chunk_size=self.config.snapshot_chunk_size, clock_ms=_now_ms,
                )
                if schema is not None
                else iter(())
            )  # fmt: skip
            done = schema is None  # dropped since: nothing to read
            for chunk in chunks:
                rows += chunk.rows
                table_rows += chunk.rows
                after = chunk.last_key
                done = chunk.done
                rest = pending[1:] if done else pending
                progress = SnapshotProgress(tuple(rest), None if done else after, rows)
                cp = stamp.with_(snapshot=progress if rest else None)
                self._put(Chunk(chunk.records, cp))
                self.context.progress(f"snapshot {db}.{table}", table_rows, estimate)
            if not done:
                raise FatalError(f"snapshot of {db}.{table} ended before its last chunk")
            pending.pop(0)
            after = None
        if not progress.pending:
            self._put(Chunk([], stamp.with_(snapshot=None)))
        with contextlib.suppress(Exception):
            conn.commit()
            conn.close()
        self._snapshot_conn = None
        self._log.info("mysql source %s: snapshot finished, %d rows", self.config.name, rows)

    def _stream(self, start: Checkpoint, catalog: Catalog) -> None:
        config = self.config
        schemas = set(config.databases) | {t.split(".", 1)[0] for t in config.tables}
        schemas.add(config.signal.split(".", 1)[0])
        binlog = BinlogStream(
            dict(config.connection()),
            server_id=config.effective_server_id,
            mariadb=self._mariadb,
            schemas=schemas,
            heartbeat_seconds=min(1.0, config.heartbeat_interval / 1000),
            reconnect_timeout=config.reconnect_timeout / 1000,
            logger=self._log,
            column_name_cache=self._keep_history,
        )
        self._binlog = binlog
        if self._stopping:
            raise StreamStoppedError
        binlog.open(start.position)
        snapshots = IncrementalSnapshot(
            config=config,
            table=lambda name: catalog.table(*name.split(".", 1)),
            all_tables=lambda: [f"{t.db}.{t.table}" for t in self._tables],
            clock_ms=_now_ms,
        )
        self._snapshots = snapshots
        stream = ChangeStream(
            source_name=config.name,
            start=start,
            catalog=catalog,
            captures=config.captures,
            max_events=config.max_batch_events,
            clock_ms=_now_ms,
            fast_decoder=config.fast_decoder,
            signal_table=config.signal,
            incremental=snapshots,
            history=self._history(start, catalog) if self._keep_history else None,
        )
        self.stream = stream
        stream.start_snapshots()
        heartbeat = Heartbeat(config.heartbeat_interval)
        shipped = start.position
        self._log.info("mysql source %s: streaming from %s", config.name, start.position)
        handle, fetch, put = stream.handle, binlog.fetch, self._put
        while not self._stopping:
            try:
                event = fetch()
            except ConnectionLostError as exc:
                resume = stream.resume_point()
                self._log.warning("binlog connection lost (%s); reconnecting", exc)
                stream.rewind()
                binlog.reopen(resume.position)
                continue
            chunk = handle(event)
            if chunk is not None:
                put(chunk)
                shipped = chunk.checkpoint.position
                self._lag.shipped(shipped, int(event.timestamp) * 1000, bool(chunk.records))
                heartbeat.postpone()
                continue
            if isinstance(event, HeartbeatLogEvent):
                stream.idle_position(int(event.packet.log_pos))
            if heartbeat.due() and not stream.in_transaction:
                if stream.position != shipped:
                    put(Chunk([], stream.checkpoint()))
                    shipped = stream.position
                    # After a heartbeat the reader was at the binlog's end when it arrived.
                    at = int(event.timestamp) * 1000
                    beat = isinstance(event, HeartbeatLogEvent) or not at
                    self._lag.shipped(shipped, _now_ms() if beat else at, False)
                heartbeat.postpone()

    def _history(self, start: Checkpoint, catalog: Catalog) -> SchemaHistory:
        config = self.config

        def topic(db: str, table: str) -> str:
            return topic_name(config.name, db, table)

        if start.history is not None:
            return SchemaHistory.from_dict(
                start.history, catalog=catalog, captures=config.captures, topic=topic
            )
        if self._resumed:
            self._log.warning(
                "mysql source %s: the binlog carries no column names (binlog_row_metadata is "
                "not FULL) and the checkpoint has no schema history: starting one from the "
                "tables' definitions now; DDL between the checkpoint and now is not followed",
                config.name,
            )
        else:
            self._log.info(
                "mysql source %s: the binlog carries no column names (binlog_row_metadata is "
                "not FULL): keeping a schema history of the captured tables", config.name,
            )  # fmt: skip
        return SchemaHistory.bootstrap(
            self._tables, catalog=catalog, captures=config.captures, topic=topic
        )

    def _close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
        for attr in ("_snapshot_conn", "_ctl", "_metrics_conn"):
            conn = getattr(self, attr)
            setattr(self, attr, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
