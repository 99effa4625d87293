"""The ``batch`` sink: records into JSON Lines, Parquet or CSV files, one per flush and partition.

Each flush writes, for every topic-partition it holds records of, one file named by its
offset range (:mod:`.files`), then lists it in the manifest (:mod:`.manifest`). Replays are
idempotent: records below the manifest's end for their partition are skipped, and ``start``
returns the manifest's offsets where they are ahead of the hub's (a crash after the
manifest line but before the hub's commit), so no record is exported twice. A crash before
the manifest line leaves a stray file that ``start`` deletes; its records come again.

Tombstones are exported like any record (op null), so a file's offsets have no holes
other than those of the log itself (compaction) and of dead-lettered records.
"""

from __future__ import annotations

import errno
import hashlib
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import ClassVar

from connectors.api import ConnectorContext, Offsets, Sink, SinkConfig
from connectors.sink.batch import csv_format, jsonl, parquet
from connectors.sink.batch.config import BatchSinkConfig, Format
from connectors.sink.batch.files import data_file, remove_strays, safe_topic, write_durably
from connectors.sink.batch.manifest import Entry, Manifest
from connectors.sink.batch.rows import BadRecordError, ExportRow, export_row
from hub.errors import ConnectorError, FatalError, RetriableError
from log.api import LogRecord, TopicPartition

__all__ = ["WRITERS", "BatchSink", "storage_error"]

# Per format: the file extension and the encoder of a file's rows.
WRITERS: dict[Format, tuple[str, Callable[[Sequence[ExportRow]], bytes]]] = {
    "jsonl": (jsonl.EXTENSION, jsonl.encode),
    "parquet": (parquet.EXTENSION, parquet.encode),
    "csv": (csv_format.EXTENSION, csv_format.encode),
}


class BatchSink(Sink[BatchSinkConfig]):
    """See the module doc. ``stop`` may come from any thread; the rest from one."""

    config_model: ClassVar[type[SinkConfig]] = BatchSinkConfig

    def __init__(self, config: BatchSinkConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self._root = config.path
        self._extension, self._encode = WRITERS[config.format]
        self._manifest = Manifest(self._root)
        self._next: Offsets = {}
        self._pending: dict[TopicPartition, list[ExportRow]] = {}
        self._started = False
        self._stopped = threading.Event()

    def start(self, resume: Offsets) -> Offsets:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            self._manifest.load()
            strays = remove_strays(self._root, self._manifest.files())
        except OSError as exc:
            raise storage_error(exc, f"opening export directory {self._root}") from exc
        for path in strays:
            self.context.logger.info(
                "batch sink %s: removed %s (not in the manifest: left by a crash)",
                self.config.name, path,
            )
        self._next = self._manifest.next_offsets()
        self._started = True
        return {tp: max(offset, self._next.get(tp, 0)) for tp, offset in resume.items()}

    def write(self, records: Sequence[LogRecord]) -> None:
        self._check_running()
        for record in records:
            tp = record.tp
            if record.offset < self._next.get(tp, 0):
                continue  # already exported (a replay from an older hub commit)
            try:
                if not safe_topic(record.topic):
                    raise BadRecordError(
                        f"topic name {record.topic!r} cannot be used as a directory name"
                    )
                self._pending.setdefault(tp, []).append(export_row(record))
            except BadRecordError as exc:
                # Raises unless errors are tolerated: then the offset must not move past it.
                self.context.dead_letter(record, str(exc))
            self._next[tp] = record.offset + 1

    def flush(self) -> Offsets:
        self._check_running()
        for tp in sorted(self._pending):
            rows = self._pending[tp]
            if rows:
                self._write_file(tp, rows)
            del self._pending[tp]
        return dict(self._next)

    def assign(self, resume: Offsets) -> Offsets:
        # as in start: the manifest (this process's own, read in start) may be ahead
        return {tp: max(offset, self._next.get(tp, 0)) for tp, offset in resume.items()}

    def revoke(self, partitions: Sequence[TopicPartition]) -> bool:
        # flushed: nothing of theirs is pending, and the manifest stays this process's truth
        return True

    def stop(self) -> None:
        self._stopped.set()

    def rewind(self, offsets: Offsets) -> Offsets:
        """Forget the files at or past ``offsets`` so the replay writes them again."""
        try:
            self._manifest.load()
            dropped, start = self._manifest.drop_from(offsets)
            remove_strays(self._root, self._manifest.files())
        except OSError as exc:
            raise storage_error(exc, f"rewinding export directory {self._root}") from exc
        self.context.logger.info(
            "batch sink %s: rewound, %d file(s) will be written again", self.config.name,
            len(dropped),
        )
        return start

    def _write_file(self, tp: TopicPartition, rows: list[ExportRow]) -> None:
        first, last = rows[0].offset, rows[-1].offset
        relative = data_file(tp.topic, tp.partition, first, last, self._extension)
        data = self._encode(rows)
        try:
            write_durably(self._root, relative, data)
            self._manifest.append(
                Entry(
                    file=relative.as_posix(),
                    topic=tp.topic,
                    partition=tp.partition,
                    first_offset=first,
                    last_offset=last,
                    records=len(rows),
                    bytes=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    written_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                )
            )
        except OSError as exc:
            raise storage_error(exc, f"writing {self._root / relative}") from exc

    def _check_running(self) -> None:
        if self._stopped.is_set() or not self._started:
            raise FatalError(f"batch sink {self.config.name!r} is not started (or was stopped)")


def storage_error(exc: OSError, doing: str) -> ConnectorError:
    reason = exc.strerror or str(exc)
    if exc.errno in _TRANSIENT:
        return RetriableError(f"{doing} failed (will retry): {reason}; free some space")
    return FatalError(f"{doing} failed: {reason}; check the path and its permissions")


# A full disk or quota may clear up; a missing or read-only directory will not by itself.
_TRANSIENT = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN))
