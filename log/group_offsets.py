"""Sink group offsets: the next offset each group will read, per partition.

One small JSON file per group in ``<root>/internal/groups`` (the name is the hex of the
group's UTF-8 name, see :mod:`log.files`)::

    {"v": 1, "group": "search", "offsets": [["shop.public.orders", 0, 1200], ...]}

A commit replaces the file crash-safely: write ``<name>.tmp``, fsync it, rename it over the
old file, fsync the directory. After a crash a group has either its old or its new offsets,
never a mix or a torn file. Commits merge: partitions not named keep their offsets (as in
Kafka). Offsets are kept in memory after the first read.

Thread-safe.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

import orjson

from hub.errors import CorruptLogError, UsageError
from log import files
from log.api import TopicPartition
from log.partition import fsync_dir, storage_error

__all__ = ["GroupOffsets"]

_VERSION = 1


class GroupOffsets:
    """Committed offsets of all sink groups in one log directory."""

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.root = root
        self.directory = files.groups_dir(root)
        self._lock = threading.Lock()
        self._cache: dict[str, dict[TopicPartition, int]] = {}
        self._read_only = read_only  # another process may commit: do not cache
        if not read_only:
            self.directory.mkdir(parents=True, exist_ok=True)
            for leftover in self.directory.glob("*" + files.TMP_SUFFIX):
                leftover.unlink()

    def commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        if not group:
            raise UsageError("a group name must not be empty")
        for tp, offset in offsets.items():
            if offset < 0:
                raise UsageError(f"cannot commit offset {offset} for {tp} of group {group!r}")
        with self._lock:
            merged = dict(self._read(group))
            merged.update(offsets)
            self._write(group, merged)
            self._cache[group] = merged

    def committed(self, group: str) -> dict[TopicPartition, int]:
        with self._lock:
            return dict(self._read(group))

    def groups(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        names = (files.group_from_file(p) for p in self.directory.iterdir())
        return sorted(n for n in names if n is not None)

    def forget_topic(self, topic: str) -> None:
        """Drop a deleted topic's offsets from every group."""
        with self._lock:
            for group in self.groups():
                offsets = self._read(group)
                kept = {tp: o for tp, o in offsets.items() if tp.topic != topic}
                if len(kept) != len(offsets):
                    self._write(group, kept)
                    self._cache[group] = kept

    def _read(self, group: str) -> dict[TopicPartition, int]:
        cached = None if self._read_only else self._cache.get(group)
        if cached is not None:
            return cached
        path = files.group_file(self.root, group)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise storage_error(e, f"cannot read offsets of group {group!r}") from e
        try:
            d = orjson.loads(raw)
            if d["v"] != _VERSION:
                raise ValueError(f"unknown version {d['v']!r}")
            offsets = {TopicPartition(t, int(p)): int(o) for t, p, o in d["offsets"]}
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptLogError(
                f"the offsets file {path} of group {group!r} is damaged ({e}); delete it and "
                "reset the group's offsets",
                topic="",
                partition=-1,
                offset=None,
            ) from e
        self._cache[group] = offsets
        return offsets

    def _write(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        path = files.group_file(self.root, group)
        tmp = path.with_name(path.name + files.TMP_SUFFIX)
        data = orjson.dumps(
            {
                "v": _VERSION,
                "group": group,
                "offsets": [[tp.topic, tp.partition, o] for tp, o in sorted(offsets.items())],
            }
        )
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            fsync_dir(self.directory)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise storage_error(e, f"cannot commit offsets of group {group!r}") from e
