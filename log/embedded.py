"""The embedded backend: topics as directories of segment files on the local disk.

Layers, bottom up: record batches (:mod:`log.batch`), a segment and its indexes
(:mod:`log.segment`, :mod:`log.index`), a partition's list of segments (:mod:`log.partition`),
and this class, which holds the topics, the source checkpoints (:mod:`log.checkpoints`), the
sink group offsets (:mod:`log.group_offsets`), the directory lock (:mod:`log.lock`) and the
background jobs: the interval flusher (:mod:`log.flush`), retention (:mod:`log.retention`)
and compaction (:mod:`log.compaction`). Opening recovers (:mod:`log.recovery`). The on-disk
format is in ``log/FORMAT.md``.

Checkpointed appends (:meth:`EmbeddedLog.append_checkpointed`) are small transactions:

1. lock the partitions written (in a fixed order, so two sources cannot deadlock);
2. write one batch per partition, marked transactional and stamped with the source's
   producer id and the next sequence number; none of it is visible yet;
3. fsync those partitions (unless the policy is ``never``);
4. append the commit record (source, checkpoint, end offsets) to the checkpoint log and
   fsync it — the commit point;
5. make the batches visible and wake the readers.

A failure before step 4 completes cuts the batches off again and raises; a crash leaves a
tail that recovery drops, because no durable commit names its sequence number. Holding the
partition locks for the whole transaction keeps other appends from landing behind an
unfinished one, so recovery never has to cut anything but that tail.

A checkpointed append that writes one partition (the usual case: a source's batch of one
table) needs no transaction: its batch carries the checkpoint and commits itself
(``ATTR_CHECKPOINT``), so one ``pwritev`` and one ``fdatasync`` make records and checkpoint
durable together, where the steps above take two sequential fsyncs. The commit record is
then appended to the checkpoint log without an fsync, as a copy that recovery re-creates
from the batch if it was lost (:func:`log.recovery.adopt_self_commits`).

Waiting readers (``read``/``fetch`` with a timeout) are woken by appends; when the log is
closed they raise :class:`LogClosedError`, and when their topic is deleted,
:class:`UnknownTopicError`.

Opened with ``read_only=True`` the log takes no lock and writes nothing, so that the CLI can
inspect a log a running hub has open: it reads what is on disk (a torn or uncommitted tail
is left out, not cut off), notices records the other process appends when asked for offsets
or records, and ``read``/``fetch`` with a timeout look again every 100 ms — the other process
cannot wake them. Writes raise :class:`UsageError`, except group offset commits (atomic file
replacements; a running hub does not see them until it restarts).

Thread-safe: one writer and many readers per partition, many partitions at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from hub.errors import (
    LogClosedError,
    LogError,
    UnknownTopicError,
    UsageError,
)
from log import files
from log.api import (
    Durability,
    Log,
    LogRecord,
    PartitionInfo,
    Record,
    RecordBlock,
    TopicConfig,
    TopicInfo,
    TopicPartition,
    check_fetch_limits,
)
from log.batch import ATTR_TRANSACTIONAL, BatchError, encode
from log.checkpoints import COPY_INTERVAL_S, CheckpointStore, producer_id_for, self_commit_block
from log.compaction import compact_partition
from log.flush import Flusher
from log.follow import open_view, refresh_partition
from log.group_offsets import GroupOffsets
from log.jobs import PeriodicJob
from log.lock import DirectoryLock
from log.partition import PartitionLog, SegmentConfig, fsync_dir, storage_error
from log.recovery import adopt_self_commits, load_partition, truncate_uncommitted
from log.retention import enforce_retention
from log.segment import MAX_SEGMENT_BYTES, Segment, SegmentError
from log.waiting import Waiter

__all__ = ["EmbeddedLog"]

_log = logging.getLogger(__name__)

_TOPIC_FILE_VERSION = 1
_DEFAULT_DURABILITY = Durability()
_DEFAULT_TOPIC_CONFIG = TopicConfig()
_CHECKPOINT_TP = TopicPartition("__checkpoints", 0)
_CHECKPOINT_TOPIC = TopicConfig(
    cleanup="compact", segment_bytes=8 * 1024 * 1024, retention_ms=None, delete_retention_ms=0
)


def _segment_config(
    config: TopicConfig, index_interval_bytes: int, *, writable: bool
) -> SegmentConfig:
    return SegmentConfig(
        segment_bytes=config.segment_bytes,
        segment_ms=config.segment_ms,
        index_interval_bytes=index_interval_bytes,
        dense=config.cleanup != "compact",
        writable=writable,
    )


def _check_topic(name: str, config: TopicConfig) -> None:
    if not files.TOPIC_NAME.match(name) or name in (".", ".."):
        raise UsageError(
            f"invalid topic name {name!r}: use 1 to 249 letters, digits, '.', '_' or '-'"
        )
    problems = []
    if config.partitions < 1:
        problems.append(f"partitions must be >= 1, got {config.partitions}")
    if not 1 <= config.segment_bytes <= MAX_SEGMENT_BYTES:
        problems.append(f"segment_bytes must be 1..{MAX_SEGMENT_BYTES}, got {config.segment_bytes}")
    if config.segment_ms < 1:
        problems.append(f"segment_ms must be >= 1, got {config.segment_ms}")
    if config.retention_ms is not None and config.retention_ms < 0:
        problems.append(f"retention_ms must be >= 0 or None, got {config.retention_ms}")
    if config.retention_bytes is not None and config.retention_bytes < 0:
        problems.append(f"retention_bytes must be >= 0 or None, got {config.retention_bytes}")
    if config.cleanup not in ("delete", "compact"):
        problems.append(f"cleanup must be 'delete' or 'compact', got {config.cleanup!r}")
    if problems:
        raise UsageError(f"topic {name!r}: " + "; ".join(problems))


class _Topic:
    def __init__(self, name: str, config: TopicConfig, partitions: list[PartitionLog]) -> None:
        self.name = name
        self.config = config
        self.partitions = partitions


class EmbeddedLog(Log):
    """The log in a local directory. See the module doc."""

    def __init__(
        self,
        path: Path,
        durability: Durability = _DEFAULT_DURABILITY,
        default_topic_config: TopicConfig = _DEFAULT_TOPIC_CONFIG,
        *,
        read_only: bool = False,
        clock: Callable[[], float] = time.time,
        index_interval_bytes: int = 4096,
        background_jobs: bool = True,
        retention_check_interval_ms: int = 5 * 60 * 1000,
        compaction_interval_ms: int = 30 * 1000,
    ) -> None:
        if durability.policy not in ("batch", "interval", "never"):
            raise UsageError(
                f"unknown durability policy {durability.policy!r}: use batch, interval or never"
            )
        self.root = Path(path)
        self.durability = durability
        self.default_topic_config = default_topic_config
        self.read_only = read_only
        self._writer_pid: str | None = None  # read-only: the writing process's LOCK state
        self._writer_epoch = 0
        self._seen_epoch: dict[TopicPartition, int] = {}
        self._clock = clock
        self._index_interval = index_interval_bytes
        self._closed = False
        self._clean = False  # the last close was clean: skip the full scan of active segments
        self._topics: dict[str, _Topic] = {}
        self._topics_lock = threading.RLock()
        self._source_locks: dict[str, threading.Lock] = {}
        self._source_locks_lock = threading.Lock()
        self._lock = DirectoryLock(self.root)
        self._flusher: Flusher | None = None
        self._jobs: list[PeriodicJob] = []
        self._open()
        if durability.policy == "interval" and not read_only:
            self._flusher = Flusher(durability.interval_ms)
        if not read_only:
            # self-commits' copies into the checkpoint log, for a source that went quiet
            self._jobs.append(
                PeriodicJob("log-checkpoint-copies", COPY_INTERVAL_S, self._checkpoints.copy_due)
            )
        if background_jobs and not read_only:
            self._start_jobs(retention_check_interval_ms, compaction_interval_ms)

    # -- opening and closing ------------------------------------------------------------------

    def clock_ms(self) -> int:
        return int(self._clock() * 1000)

    def _open(self) -> None:
        if self.read_only:
            if not files.topics_dir(self.root).is_dir():
                what = "does not exist" if not self.root.exists() else "has no topics/ in it"
                raise UsageError(
                    f"no changehub log at {self.root} (the directory {what}): check log.path, "
                    "or run the pipeline first (changehub run FILE) to create it"
                )
        else:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise storage_error(e, f"cannot create the log directory {self.root}") from e
            self._lock.acquire()
        try:
            if not self.read_only:
                self._clean = self._take_clean_shutdown_marker()
                for d in (files.topics_dir(self.root), files.checkpoint_dir(self.root).parent):
                    d.mkdir(parents=True, exist_ok=True)
                self._empty_trash()
            cp = self._load_partition(
                _CHECKPOINT_TP, files.checkpoint_dir(self.root), _CHECKPOINT_TOPIC
            )
            if self.read_only:
                open_view(cp, lambda _producer: 0)
            self._checkpoints = CheckpointStore(cp)
            for d in sorted(files.topics_dir(self.root).iterdir()):
                if files.TOPIC_NAME.match(d.name) and (d / "topic.json").exists():
                    self._topics[d.name] = self._load_topic(d.name, recover=False)
            if not self.read_only:
                # every partition's self-commits first: a source's last commit may be in any
                # partition it writes, and cutting uncommitted tails needs the last one
                parts = [p for t in self._topics.values() for p in t.partitions]
                for p in parts:
                    adopt_self_commits(p, self._checkpoints)
                for p in parts:
                    truncate_uncommitted(p, self._checkpoints.committed_seq)
            self._groups = GroupOffsets(self.root, read_only=self.read_only)
            if not self.read_only:
                # Recovery has cut what it had to: tell read-only views to look again.
                self._lock.mark_recovered()
        except OSError as e:
            self._close_partitions()
            self._lock.release()
            raise storage_error(e, f"cannot open the log in {self.root}") from e
        except BaseException:
            self._close_partitions()
            self._lock.release()
            raise

    def _load_partition(
        self, tp: TopicPartition, directory: Path, config: TopicConfig
    ) -> PartitionLog:
        seg = _segment_config(config, self._index_interval, writable=not self.read_only)
        return load_partition(tp, directory, seg, clock_ms=self.clock_ms, clean=self._clean)

    def _take_clean_shutdown_marker(self) -> bool:
        """Whether the last close was clean; the marker goes before anything is written, so
        that a crash from here on is never taken for a clean shutdown."""
        marker = files.clean_shutdown_file(self.root)
        if not marker.exists():
            return False
        marker.unlink()
        fsync_dir(self.root)
        return True

    def _leave_clean_shutdown_marker(self) -> None:
        parts = [p for t in self._topics.values() for p in t.partitions]
        if any(p.failed for p in [*parts, self._checkpoints.partition]):
            return
        marker = files.clean_shutdown_file(self.root)
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, b'{"v": 1}\n')
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_dir(self.root)
        except OSError as e:  # only costs a full scan of the active segments at the next open
            _log.warning("could not mark the log as cleanly closed: %s", e)

    def _load_topic(self, name: str, *, recover: bool = True) -> _Topic:
        """Load a topic's partitions; ``recover``: also adopt self-commits and cut
        uncommitted tails (the caller does it for all topics at once when False)."""
        config = self._read_topic_config(name)
        partitions: list[PartitionLog] = []
        try:
            for i in range(config.partitions):
                tp = TopicPartition(name, i)
                p = self._load_partition(tp, files.partition_dir(self.root, name, i), config)
                partitions.append(p)
                if self.read_only:
                    open_view(p, self._checkpoints.committed_seq)
                    continue
                p.before_roll = self._checkpoints.sync
                if recover:
                    adopt_self_commits(p, self._checkpoints)
                    truncate_uncommitted(p, self._checkpoints.committed_seq)
        except BaseException:
            for p in partitions:
                p.close()
            raise
        return _Topic(name, config, partitions)

    def _read_topic_config(self, name: str) -> TopicConfig:
        path = files.topic_config_file(self.root, name)
        d = orjson.loads(path.read_bytes())
        if d.get("v") != _TOPIC_FILE_VERSION:
            raise UsageError(f"{path}: unknown topic file version {d.get('v')!r}")
        known = {f.name for f in dataclasses.fields(TopicConfig)}
        return TopicConfig(**{k: v for k, v in d["config"].items() if k in known})

    def _empty_trash(self) -> None:
        for d in (files.trash_dir(self.root), files.staging_dir(self.root)):
            if d.exists():
                shutil.rmtree(d)

    def _start_jobs(self, retention_ms: int, compaction_ms: int) -> None:
        self._jobs.append(PeriodicJob("log-retention", retention_ms / 1000, self.run_retention))
        self._jobs.append(PeriodicJob("log-compaction", compaction_ms / 1000, self.run_compaction))

    def close(self) -> None:
        with self._topics_lock:
            if self._closed:
                return
            self._closed = True
        for job in self._jobs:
            job.stop()
        if self._flusher is not None:
            self._flusher.close()
        try:
            # the copies of self-commits still in memory: a clean open does not look for them
            # in the batches (it skips the scan of active segments)
            copied = self.read_only or self._checkpoints.write_pending()
            self._close_partitions()
            if copied and not self.read_only:
                self._leave_clean_shutdown_marker()
        finally:
            self._lock.release()

    def _close_partitions(self) -> None:
        first: BaseException | None = None
        parts = [p for t in self._topics.values() for p in t.partitions]
        cp = getattr(self, "_checkpoints", None)
        if cp is not None:
            parts.append(cp.partition)
        for p in parts:
            try:
                p.close()
            except OSError as e:
                first = first or storage_error(e, f"cannot flush {p.tp} on close")
        if first is not None:
            raise first

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"the log in {self.root} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise UsageError(
                f"the log in {self.root} was opened read-only (for inspection); appends and "
                "topic changes go through the hub that has it open"
            )

    # -- topics -------------------------------------------------------------------------------

    def _topic(self, name: str) -> _Topic:
        t = self._topics.get(name)
        if t is None:
            self._check_open()
            raise UnknownTopicError(
                f"no topic {name!r} in the log at {self.root}"
                + (f"; topics: {', '.join(sorted(self._topics))}" if self._topics else "")
            )
        return t

    def _partition(self, tp: TopicPartition) -> PartitionLog:
        t = self._topic(tp.topic)
        if not 0 <= tp.partition < len(t.partitions):
            raise UnknownTopicError(
                f"topic {tp.topic!r} has partitions 0..{len(t.partitions) - 1}, not {tp.partition}"
            )
        return t.partitions[tp.partition]

    def create_topic(self, name: str, config: TopicConfig) -> None:
        _check_topic(name, config)
        self._check_writable()
        with self._topics_lock:
            existing = self._topics.get(name)
            if existing is not None:
                if existing.config.partitions != config.partitions:
                    raise UsageError(
                        f"topic {name!r} exists with {existing.config.partitions} partitions, "
                        f"not {config.partitions}; the partition count cannot change"
                    )
                return
            staging = files.staging_dir(self.root) / name
            final = files.topic_dir(self.root, name)
            try:
                if staging.exists():
                    shutil.rmtree(staging)
                staging.mkdir(parents=True)
                body = {
                    "v": _TOPIC_FILE_VERSION,
                    "name": name,
                    "config": dataclasses.asdict(config),
                }
                (staging / "topic.json").write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
                options = _segment_config(config, self._index_interval, writable=True).options
                for i in range(config.partitions):
                    (staging / str(i)).mkdir()
                    Segment.create(staging / str(i), 0, options).close()
                _fsync_tree(staging)
                os.rename(staging, final)
                fsync_dir(final.parent)
            except OSError as e:
                raise storage_error(e, f"cannot create topic {name!r}") from e
            self._topics[name] = self._load_topic(name)

    def topic_config(self, name: str) -> TopicConfig:
        return self._topic(name).config

    def list_topics(self) -> list[str]:
        self._check_open()
        return sorted(self._topics)

    def describe_topic(self, name: str) -> TopicInfo:
        t = self._topic(name)
        parts = tuple(
            PartitionInfo(i, p.start_offset, self._end(p), p.size_bytes)
            for i, p in enumerate(t.partitions)
        )
        return TopicInfo(name, t.config, parts)

    def delete_topic(self, name: str) -> None:
        self._check_writable()
        # a lazily copied commit may live only in a batch of this topic: make the copy
        # durable before the batch goes
        self._checkpoints.sync()
        with self._topics_lock:
            t = self._topic(name)
            del self._topics[name]
        for p in t.partitions:
            p.deleted = True
            p.close()
        trash = files.trash_dir(self.root) / f"{name}-{uuid.uuid4().hex}"
        try:
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(files.topic_dir(self.root, name), trash)
            fsync_dir(files.topics_dir(self.root))
            shutil.rmtree(trash)
            self._groups.forget_topic(name)
        except OSError as e:
            raise storage_error(e, f"cannot delete topic {name!r}") from e

    # -- writing ------------------------------------------------------------------------------

    def append(self, tp: TopicPartition, records: Sequence[Record]) -> int:
        self._check_writable()
        p = self._partition(tp)
        if not records:
            return p.log_end
        policy = self.durability.policy
        base = p.append(records, sync=policy == "batch", publish=policy != "interval")
        if self._flusher is not None:
            self._flusher.await_durable(p)
        return base

    def _source_lock(self, source: str) -> threading.Lock:
        with self._source_locks_lock:
            lock = self._source_locks.get(source)
            if lock is None:
                lock = self._source_locks[source] = threading.Lock()
            return lock

    def append_checkpointed(
        self,
        source: str,
        writes: Mapping[TopicPartition, Sequence[Record]],
        checkpoint: Mapping[str, Any],
    ) -> dict[TopicPartition, int]:
        self._check_writable()
        if not source:
            raise UsageError("a checkpointed append needs a source name")
        CheckpointStore.check(source, checkpoint)
        targets = sorted((tp, self._partition(tp), recs) for tp, recs in writes.items() if recs)
        sync = self.durability.policy != "never"
        producer = producer_id_for(source)
        with self._source_lock(source):
            seq = self._checkpoints.next_seq(source)
            now = self.clock_ms()
            if len(targets) == 1:
                tp, p, recs = targets[0]
                block = self_commit_block(source, checkpoint)
                batch = encode(recs, now, producer_id=producer, producer_seq=seq, checkpoint=block)
                with p.lock:
                    base = p.append_locked(batch)
                    if sync:
                        try:
                            p.flush_locked()
                        except LogError:
                            self._roll_back([(p, base)])
                            raise
                    # the batch is the commit: the checkpoint log's copy is lazy (see above)
                    self._checkpoints.copy_self_commit(source, seq, checkpoint, {tp: p.log_end})
                    p.publish_locked()
                return {tp: base}
            batches = [
                encode(
                    recs, now, attributes=ATTR_TRANSACTIONAL, producer_id=producer, producer_seq=seq
                )
                for _, _, recs in targets
            ]
            with contextlib.ExitStack() as stack:
                for _, p, _ in targets:
                    stack.enter_context(p.lock)
                written: list[tuple[PartitionLog, int]] = []
                try:
                    for (_, p, _), batch in zip(targets, batches, strict=True):
                        written.append((p, p.append_locked(batch)))
                    if sync:
                        for p, _ in written:
                            p.flush_locked()
                except LogError:
                    self._roll_back(written)
                    raise
                ends = {p.tp: p.log_end for p, _ in written}
                try:
                    self._checkpoints.commit(source, seq, checkpoint, ends, sync=sync)
                except LogError as e:
                    if self._checkpoints.partition.failed is None:
                        self._roll_back(written)
                    else:  # the commit may or may not be on disk: only recovery can tell
                        for p, _ in written:
                            p.failed = f"the commit of a checkpointed append failed: {e}"
                    raise
                for p, _ in written:
                    p.publish_locked()
        return {p.tp: base for p, base in written}

    @staticmethod
    def _roll_back(written: list[tuple[PartitionLog, int]]) -> None:
        for p, base in written:
            try:
                p.truncate_locked(base)
            except LogError as e:  # the partition is marked failed: it refuses writes
                _log.error("could not roll back %s to %d: %s", p.tp, base, e)

    def last_checkpoint(self, source: str) -> dict[str, Any] | None:
        self._check_open()
        if self.read_only:
            self._refresh_checkpoints()
            return self._view_checkpoint(source)
        commit = self._checkpoints.last(source)
        return None if commit is None else dict(commit.checkpoint)

    def _view_checkpoint(self, source: str) -> dict[str, Any] | None:
        """Read-only: the newest of the checkpoint log's commit and the one a self-committing
        batch carries. The writer copies a batch's checkpoint into the checkpoint log only
        after the batch (without an fsync), so a view that already shows the batch's records
        must take the checkpoint from the batch, or it would report an older position than
        the records it shows."""
        commit = self._checkpoints.last(source)
        best_seq = 0 if commit is None else commit.seq
        best = None if commit is None else commit.checkpoint
        producer = producer_id_for(source)
        with self._topics_lock:
            parts = [p for t in self._topics.values() for p in t.partitions]
        for p in parts:
            self._refresh(p)
            active = p.active
            entry = active.self_commits.get(producer)
            if entry is None or entry[1] <= best_seq:
                continue
            pos, seq = entry
            try:
                block = orjson.loads(active.self_commit_at(pos)[1])
            except (BatchError, SegmentError, ValueError):
                continue  # cut or replaced under us by the writer: the checkpoint log has it
            if isinstance(block, dict) and block.get("source") == source:
                best_seq, best = seq, block.get("checkpoint")
        return None if best is None else dict(best)

    # -- reading ------------------------------------------------------------------------------

    def _end(self, p: PartitionLog) -> int:
        if self.read_only:
            self._refresh(p)
        return p.end_offset

    def _refresh(self, p: PartitionLog) -> None:
        """Read-only mode: take in what the writing process appended since we looked."""
        writer = files.read_lock_state(self.root)
        if writer and not writer.endswith("recovered"):
            # A writer is recovering and may be cutting tails right now: keep showing what
            # was visible until it is done (then the state changes and we look again).
            return
        if writer != self._writer_pid:
            # A new writer process, or one that finished its recovery: it may have cut what
            # we scanned past the visible end.
            self._writer_pid = writer
            self._writer_epoch += 1
        rescan = self._seen_epoch.get(p.tp) != self._writer_epoch
        self._seen_epoch[p.tp] = self._writer_epoch
        self._refresh_checkpoints(rescan)
        refresh_partition(p, self._checkpoints.committed_seq, rescan=rescan)

    def _refresh_checkpoints(self, rescan: bool = False) -> None:
        cp = self._checkpoints
        before = cp.partition.end_offset
        refresh_partition(cp.partition, lambda _pid: 0, rescan=rescan)
        if cp.partition.end_offset != before:
            cp.load_from(before)

    def fetch(
        self,
        positions: Mapping[TopicPartition, int],
        *,
        max_records: int = 10_000,
        max_bytes: int = 8 * 1024 * 1024,
        timeout: float = 0.0,
    ) -> list[LogRecord]:
        self._check_open()
        check_fetch_limits(max_records, max_bytes)
        parts = [(self._partition(tp), offset) for tp, offset in positions.items()]
        for p, offset in parts:
            if self.read_only:
                self._refresh(p)
            p.check_offset(offset)
        deadline = time.monotonic() + timeout
        while True:
            ends = [p.end_offset for p, _ in parts]
            out = self._fetch_now(parts, max_records, max_bytes)
            if out or time.monotonic() >= deadline:
                return out
            if any(p.end_offset != end for (p, _), end in zip(parts, ends, strict=True)):
                continue  # records came in while we looked: read them
            if any(offset < end for (_, offset), end in zip(parts, ends, strict=True)):
                return out  # only compacted-away records lie there: nothing to wait for
            if self.read_only:
                # another process appends: nothing in this one can wake us
                threading.Event().wait(min(0.1, max(deadline - time.monotonic(), 0)))
                continue
            waiter = Waiter()
            for p, _ in parts:
                p.wait(waiter)
            try:
                if not any(offset < p.end_offset or p.closed for p, offset in parts):
                    waiter.wait(deadline)
            finally:
                for p, _ in parts:
                    p.unwait(waiter)

    def _fetch_now(
        self, parts: list[tuple[PartitionLog, int]], max_records: int, max_bytes: int
    ) -> list[LogRecord]:
        out: list[LogRecord] = []
        budget = max_bytes
        for p, offset in parts:
            if p.deleted:
                raise UnknownTopicError(f"topic {p.tp.topic!r} was deleted")
            if p.closed:
                self._check_open()
                raise LogClosedError(f"{p.tp} is closed")
            if self.read_only:
                self._refresh(p)
            if offset >= p.end_offset:
                continue
            records = p.read(offset, max_records=max_records - len(out), max_bytes=budget)
            out += records
            budget -= sum(len(r.value or b"") + len(r.key or b"") for r in records)
            if len(out) >= max_records or budget <= 0:
                break
        return out

    def read_block(
        self,
        tp: TopicPartition,
        offset: int,
        *,
        max_records: int = 10_000,
        max_bytes: int = 8 * 1024 * 1024,
    ) -> RecordBlock:
        # The batches' stored key and value columns are joined as they are: one bytes join per
        # column per read, where read() makes a LogRecord and two bytes objects per record.
        self._check_open()
        check_fetch_limits(max_records, max_bytes)
        p = self._partition(tp)
        if self.read_only:
            self._refresh(p)
        p.check_offset(offset)
        if p.deleted:
            raise UnknownTopicError(f"topic {tp.topic!r} was deleted")
        if p.closed:
            self._check_open()
            raise LogClosedError(f"{tp} is closed")
        parts = [] if offset >= p.end_offset else p.read_block(
            offset, max_records=max_records, max_bytes=max_bytes)
        over = sum(map(len, parts)) - max_records
        if over > 0:
            last = parts[-1]
            parts[-1] = last.between(last.offsets[0], last.offsets[len(last) - over])
        offsets, timestamps = array("q"), array("q")
        for part in parts:
            offsets += part.offsets
            timestamps += part.timestamps
        return RecordBlock(
            tp, offsets, timestamps,
            b"".join(part.key_lengths for part in parts), b"".join(part.keys for part in parts),
            b"".join(part.value_lengths for part in parts),
            b"".join(part.values for part in parts),
        )

    def start_offset(self, tp: TopicPartition) -> int:
        self._check_open()
        return self._partition(tp).start_offset

    def end_offset(self, tp: TopicPartition) -> int:
        self._check_open()
        return self._end(self._partition(tp))

    def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        self._check_open()
        p = self._partition(tp)
        if self.read_only:
            self._refresh(p)
        return p.offset_for_time(timestamp_ms)

    # -- sink group offsets -------------------------------------------------------------------

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._check_open()
        for tp in offsets:
            self._partition(tp)
        self._groups.commit(group, offsets)

    def committed_offsets(self, group: str) -> dict[TopicPartition, int]:
        self._check_open()
        return self._groups.committed(group)

    def list_groups(self) -> list[str]:
        self._check_open()
        return self._groups.groups()

    # -- maintenance --------------------------------------------------------------------------

    def partitions(self) -> list[tuple[TopicConfig, PartitionLog]]:
        """Every user partition with its topic's config (for the background jobs)."""
        with self._topics_lock:
            return [(t.config, p) for t in self._topics.values() for p in t.partitions]

    def run_retention(self) -> int:
        """Delete segments past their topic's retention now; returns how many went."""
        if self._closed:
            return 0
        now = self.clock_ms()
        return sum(enforce_retention(p, config, now) for config, p in self.partitions())

    def run_compaction(self) -> int:
        """Compact every ``cleanup: compact`` topic now; returns segments rewritten."""
        if self._closed:
            return 0
        now = self.clock_ms()
        n = 0
        targets = [(c, p) for c, p in self.partitions() if c.cleanup == "compact"]
        for config, p in targets:
            n += compact_partition(p, config, now)
        if not self.read_only:
            n += compact_partition(self._checkpoints.partition, _CHECKPOINT_TOPIC, now)
        return n


def _fsync_tree(path: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))
