"""The manifest: ``_manifest.jsonl``, one JSON line per export file, append-only.

Each line names a file and what it holds::

    {"file": "shop.public.orders/0/00000000000000000000-00000000000000000999.parquet",
     "topic": "shop.public.orders", "partition": 0, "first_offset": 0, "last_offset": 999,
     "records": 1000, "bytes": 48211, "sha256": "…", "written_at": "2026-01-31T02:00:03Z"}

A file is part of the export once its line is durable (each append is fsync'd); readers
should take the manifest, not a directory listing, as the list of files. A crash can
leave a torn last line; :meth:`Manifest.load` cuts it off (its file is then a stray).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from connectors.api import Offsets
from connectors.sink.batch.files import fsync_dir
from hub.errors import FatalError
from log.api import TopicPartition

__all__ = ["MANIFEST", "Entry", "Manifest"]

MANIFEST = "_manifest.jsonl"


@dataclass(frozen=True)
class Entry:
    file: str  # relative to the export directory, with /
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    records: int
    bytes: int
    sha256: str
    written_at: str

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class Manifest:
    """The manifest of one export directory. Not thread-safe (one sink thread)."""

    def __init__(self, root: Path) -> None:
        self.path = root / MANIFEST
        self.entries: list[Entry] = []

    def load(self) -> None:
        """Read every entry, cutting off a torn last line left by a crash."""
        self.entries = []
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good = 0  # bytes of complete, valid lines
        lines = data.split(b"\n")
        for number, line in enumerate(lines, start=1):
            is_last = number == len(lines)
            if not line:
                if is_last:
                    break
                continue
            try:
                entry = Entry(**orjson.loads(line))
            except (orjson.JSONDecodeError, TypeError) as exc:
                if is_last:
                    break  # torn by a crash mid-append
                raise FatalError(
                    f"{self.path} line {number} is not a manifest entry ({exc}); the manifest "
                    "was edited or damaged: restore it or remove the line and its file"
                ) from None
            if is_last:
                break  # complete JSON without its newline: the append did not finish
            self.entries.append(entry)
            good += len(line) + 1
        if good < len(data):
            os.truncate(self.path, good)
            self._fsync()

    def append(self, entry: Entry) -> None:
        created = not self.path.exists()
        with open(self.path, "ab") as f:
            f.write(orjson.dumps(asdict(entry), option=orjson.OPT_APPEND_NEWLINE))
            f.flush()
            os.fsync(f.fileno())
        if created:
            fsync_dir(self.path.parent)
        self.entries.append(entry)

    def next_offsets(self) -> Offsets:
        """Per topic-partition, the offset after the last one in any listed file."""
        out: Offsets = {}
        for e in self.entries:
            if e.last_offset + 1 > out.get(e.tp, 0):
                out[e.tp] = e.last_offset + 1
        return out

    def drop_from(self, offsets: Offsets) -> tuple[list[Entry], Offsets]:
        """Forget every file holding an offset at or past ``offsets`` of its partition.

        The manifest is rewritten whole (temporary file, fsync, rename, fsync of the
        directory), so a crash leaves the old or the new one. The forgotten files become
        strays, removed at the next start. Returns them and, per partition, the offset a
        replay must start from to rewrite them whole (a file may straddle the point).
        """
        keep: list[Entry] = []
        dropped: list[Entry] = []
        start = dict(offsets)
        for e in self.entries:
            at = offsets.get(e.tp)
            if at is not None and e.last_offset >= at:
                dropped.append(e)
                start[e.tp] = min(start[e.tp], e.first_offset)
            else:
                keep.append(e)
        if dropped:
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as f:
                for e in keep:
                    f.write(orjson.dumps(asdict(e), option=orjson.OPT_APPEND_NEWLINE))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
            self.entries = keep
        return dropped, start

    def files(self) -> set[str]:
        return {e.file for e in self.entries}

    def _fsync(self) -> None:
        fd = os.open(self.path, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
