"""Source checkpoints: the internal checkpoint log and the in-memory view of it.

A checkpointed append (see :mod:`log.embedded`) writes its records to each partition as a
*transactional* batch stamped with the source's producer id and a sequence number, makes them
durable, and then appends one record here: the commit. Until the commit is durable readers
do not see those batches; after a crash, recovery drops any transactional tail whose sequence
number is above the last commit of its producer (:func:`log.recovery.truncate_uncommitted`).

The checkpoint log is an ordinary partition log in ``<root>/internal/checkpoints`` with
compaction (the latest record per source is all that matters). Each record has key = the
source name (UTF-8) and value = JSON::

    {"v": 1, "source": "shop", "producer_id": 123…, "seq": 42,
     "checkpoint": {...the source's position...},
     "ends": [["shop.public.orders", 0, 1200], ...]}

``ends`` names the end offset of every partition the append wrote, as DESIGN.md asks; the
commit decision itself uses ``producer_id`` and ``seq``, which stay meaningful after
retention or compaction removed older records.

A checkpointed append that writes a single partition does not need this log to commit: its
batch carries the commit (:func:`self_commit_block`: source and checkpoint; the producer id
and sequence number are in the batch header) and is committed once it is durable, with one
fsync. The commit is then copied here lazily, so that this log stays the one place to look:
the latest such commit of each source waits in memory and is written (without an fsync) at
most :data:`COPY_INTERVAL_S` later, by the next append after that or by the log's copy job,
and always before a multi-partition commit, before any partition rolls
(:meth:`CheckpointStore.sync`) and at close; the copy becomes durable with the next fsync of
this log. Writing it after every append put a second write (often blocked behind the file
system's journal) between the batch's fsync and the append's return, on every change's
latency path. Recovery re-adopts a copy that was lost (:func:`log.recovery.adopt_self_commits`).

Thread-safe: every write here happens under one write lock (so the copies and the commits
of a source reach the log in sequence order: compaction keeps a source's last record); the
in-memory view is replaced under a lock.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from hub.errors import CorruptLogError, LogError, LogFullError, LogStorageError, UsageError
from log.api import Record, TopicPartition
from log.partition import PartitionLog

__all__ = ["COPY_INTERVAL_S", "CheckpointStore", "Commit", "producer_id_for", "self_commit_block"]

_VERSION = 1
# How long a self-commit's copy may wait in memory (what a read-only view of the log, in
# another process, may lag behind in last_checkpoint).
COPY_INTERVAL_S = 0.5
_log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1024)  # asked several times per append: hash each name once
def producer_id_for(source: str) -> int:
    """A stable, non-zero 63-bit id for a source name (stamped into its transactional batches)."""
    digest = hashlib.blake2b(source.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") & (2**63 - 1)) or 1


class Commit(NamedTuple):
    source: str
    producer_id: int
    seq: int
    checkpoint: dict[str, Any]
    ends: dict[TopicPartition, int]


class CheckpointStore:
    """The latest commit of every source, backed by the checkpoint partition log."""

    def __init__(self, partition: PartitionLog) -> None:
        self.partition = partition
        self._lock = threading.Lock()
        self._latest: dict[str, Commit] = {}
        self._seq_by_producer: dict[int, int] = {}
        # The latest self-commit of each source not yet copied here (or refused by a full
        # disk): written by write_pending(), at the latest by sync(), which runs before any
        # partition rolls, so recovery can still adopt each from its batch.
        self._pending: dict[str, Commit] = {}
        self._written_at = time.monotonic()
        self._write_lock = threading.Lock()
        self.load_from(partition.start_offset)

    def load_from(self, offset: int) -> None:
        """Take in the commits from ``offset`` to the end (at open; and when following)."""
        p = self.partition
        while offset < p.end_offset:
            records = p.read(offset, max_records=10_000, max_bytes=4 << 20)
            if not records:
                break
            for r in records:
                try:
                    commit = _decode(r.value)
                except (ValueError, KeyError, TypeError) as e:
                    raise CorruptLogError(
                        f"checkpoint record at offset {r.offset} cannot be decoded: {e}",
                        topic="__checkpoints",
                        partition=0,
                        offset=r.offset,
                    ) from e
                self._remember(commit)
            offset = records[-1].offset + 1

    def _remember(self, commit: Commit) -> None:
        latest = self._latest.get(commit.source)
        if latest is None or commit.seq >= latest.seq:
            self._latest[commit.source] = commit
        prev = self._seq_by_producer.get(commit.producer_id, 0)
        self._seq_by_producer[commit.producer_id] = max(prev, commit.seq)

    def last(self, source: str) -> Commit | None:
        with self._lock:
            return self._latest.get(source)

    def committed_seq(self, producer_id: int) -> int:
        """The sequence number of the producer's last durable commit (0: none)."""
        with self._lock:
            return self._seq_by_producer.get(producer_id, 0)

    def next_seq(self, source: str) -> int:
        with self._lock:
            return self._seq_by_producer.get(producer_id_for(source), 0) + 1

    def sources(self) -> list[str]:
        with self._lock:
            return sorted(self._latest)

    def sync(self) -> None:
        """Make lazily written commits durable (before a partition is rolled: recovery only
        looks for self-committing batches in active segments)."""
        p = self.partition
        with self._write_lock:
            self._write_pending()
        if p.failed is not None:
            raise LogStorageError(
                f"the checkpoint log refuses writes since {p.failed}; close and reopen the log "
                "to recover it"
            )
        if p.dirty:
            with p.lock:
                p.flush_locked()

    def copy_self_commit(
        self,
        source: str,
        seq: int,
        checkpoint: Mapping[str, Any],
        ends: Mapping[TopicPartition, int],
    ) -> None:
        """Note the commit a durable self-committing batch carries; its copy is written here
        within :data:`COPY_INTERVAL_S` (see the module doc). It is committed whatever happens
        to the copy: a failed write marks this log failed (so no partition rolls past the
        batch before a reopen adopts it again) instead of failing the append."""
        commit = Commit(source, producer_id_for(source), seq, dict(checkpoint), dict(ends))
        with self._lock:
            self._remember(commit)
            self._pending[source] = commit
        if time.monotonic() - self._written_at >= COPY_INTERVAL_S:
            self.write_pending()

    def copy_due(self) -> None:
        """Write the waiting copies if the oldest may have waited :data:`COPY_INTERVAL_S`
        (the log's copy job, so that a source that went quiet is copied too)."""
        if self._pending and time.monotonic() - self._written_at >= COPY_INTERVAL_S:
            self.write_pending()

    def write_pending(self) -> bool:
        """Write the copies waiting in memory (the log's copy job and its close call this);
        failures are handled as :meth:`copy_self_commit` says. Whether none is left."""
        with self._write_lock:
            try:
                self._write_pending()
                return True
            except LogFullError as e:
                # the checkpoint log is intact (the log undid the write): the copies stay
                # pending for sync(), which a roll waits on, rather than failing the log
                _log.warning(
                    "the checkpoint log is full; the copy of a checkpoint is written "
                    "once space is freed (%s)",
                    e,
                )
            except LogError as e:
                if self.partition.failed is None:
                    self.partition.failed = f"copying a self-commit failed: {e}"
                _log.error("could not copy a checkpoint into the checkpoint log: %s", e)
            return False

    def _write_pending(self) -> None:
        """Write the pending copies in one append, oldest sequence first (raises LogFullError
        while the disk is full, keeping them: the caller's roll or commit waits for space
        like an append). Called with the write lock held."""
        self._written_at = time.monotonic()
        with self._lock:
            if not self._pending:
                return
            copies = sorted(self._pending.values(), key=lambda c: c.seq)
        self.partition.append([Record(c.source.encode(), _encode(c)) for c in copies],
                              sync=False, publish=True)  # fmt: skip
        with self._lock:
            for c in copies:
                if self._pending.get(c.source) is c:
                    del self._pending[c.source]

    def adopt(
        self, block: bytes, producer_id: int, seq: int, ends: Mapping[TopicPartition, int]
    ) -> Commit:
        """Recovery: write the commit a self-committing batch carries (``block``), durably."""
        try:
            d = orjson.loads(block)
            if d.get("v") != _VERSION:
                raise ValueError(f"unknown self-commit block version {d.get('v')!r}")
            source, checkpoint = d["source"], d["checkpoint"]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CorruptLogError(
                f"a self-committing batch of producer {producer_id} (sequence {seq}) carries a "
                f"checkpoint that cannot be decoded: {e}",
                topic="__checkpoints",
                partition=0,
                offset=None,
            ) from e
        if producer_id_for(source) != producer_id:
            raise CorruptLogError(
                f"a self-committing batch names source {source!r}, whose producer id is not "
                f"the batch's {producer_id}",
                topic="__checkpoints",
                partition=0,
                offset=None,
            )
        return self.commit(source, seq, checkpoint, ends, sync=True)

    @staticmethod
    def check(source: str, checkpoint: Mapping[str, Any]) -> None:
        """Raise UsageError now if ``checkpoint`` could not be stored (before any write)."""
        _encode(Commit(source, 0, 0, dict(checkpoint), {}))

    def commit(
        self,
        source: str,
        seq: int,
        checkpoint: Mapping[str, Any],
        ends: Mapping[TopicPartition, int],
        *,
        sync: bool,
    ) -> Commit:
        """Append and (if ``sync``) fsync the commit record; visible in memory afterwards."""
        commit = Commit(source, producer_id_for(source), seq, dict(checkpoint), dict(ends))
        value = _encode(commit)
        with self._write_lock:
            self._write_pending()  # in sequence order: a later commit never goes first
            self.partition.append([Record(source.encode(), value)], sync=sync, publish=True)
            with self._lock:
                self._remember(commit)
        return commit


def self_commit_block(source: str, checkpoint: Mapping[str, Any]) -> bytes:
    """What a self-committing batch carries: ``{"v": 1, "source": …, "checkpoint": …}``
    (checked beforehand by :meth:`CheckpointStore.check`)."""
    return orjson.dumps({"v": _VERSION, "source": source, "checkpoint": checkpoint})


def _encode(c: Commit) -> bytes:
    try:
        return orjson.dumps(
            {
                "v": _VERSION,
                "source": c.source,
                "producer_id": c.producer_id,
                "seq": c.seq,
                "checkpoint": c.checkpoint,
                "ends": [[tp.topic, tp.partition, end] for tp, end in sorted(c.ends.items())],
            }
        )
    except TypeError as e:
        raise UsageError(
            f"the checkpoint of source {c.source!r} cannot be stored: {e}; a checkpoint must "
            "be JSON: str keys, and str, int, float, bool, None, list or dict values"
        ) from e


def _decode(raw: bytes | None) -> Commit:
    d = orjson.loads(raw or b"null")
    if d.get("v") != _VERSION:
        raise ValueError(f"unknown checkpoint record version {d.get('v')!r}")
    return Commit(
        d["source"],
        int(d["producer_id"]),
        int(d["seq"]),
        d["checkpoint"],
        {TopicPartition(t, int(p)): int(e) for t, p, e in d["ends"]},
    )
