"""Export files: their names, and writing them so that a crash never leaves half a file.

A file holds one flush of one topic-partition and is named by its offset range::

    <path>/<topic>/<partition>/<first offset:020d>-<last offset:020d>.<ext>

It is written under a temporary name (``.<name>.tmp``), fsync'd, renamed into place, and
its directory fsync'd; only then is it added to the manifest (:mod:`.manifest`). A file on
disk that the manifest does not list is what a crash between rename and manifest left
behind, and :func:`remove_strays` deletes it (the same records are written again).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["data_file", "remove_strays", "safe_topic", "write_durably"]

_TOPIC = re.compile(r"[A-Za-z0-9._-]+")
_DATA_FILE = re.compile(r"\d{20}-\d{20}\.[a-z]+")
TMP_SUFFIX = ".tmp"


def safe_topic(topic: str) -> bool:
    """Whether ``topic`` can be used as a directory name as it is."""
    return bool(_TOPIC.fullmatch(topic)) and topic not in (".", "..")


def data_file(topic: str, partition: int, first: int, last: int, extension: str) -> Path:
    """The file's path relative to the export directory."""
    return Path(topic, str(partition), f"{first:020d}-{last:020d}.{extension}")


def write_durably(root: Path, relative: Path, data: bytes) -> None:
    """Write ``data`` to ``root/relative`` atomically and durably (see the module doc)."""
    target = root / relative
    _make_dirs(root, relative.parent)
    tmp = target.with_name(f".{target.name}{TMP_SUFFIX}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(root: Path, relative: Path) -> None:
    """Create ``root/relative`` level by level, making each new entry durable in its parent."""
    current = root
    for part in relative.parts:
        child = current / part
        if not child.is_dir():
            child.mkdir(exist_ok=True)
            fsync_dir(current)
        current = child


def remove_strays(root: Path, listed: Iterable[str]) -> list[Path]:
    """Delete temporary files, and data files the manifest does not list; return them."""
    keep = set(listed)
    removed: list[Path] = []
    for path in sorted(root.glob("*/*/*")):
        name = path.name
        is_tmp = name.startswith(".") and name.endswith(TMP_SUFFIX)
        is_data = bool(_DATA_FILE.fullmatch(name))
        if path.is_file() and (is_tmp or is_data):
            relative = path.relative_to(root).as_posix()
            if is_tmp or relative not in keep:
                path.unlink()
                removed.append(path)
    for directory in {p.parent for p in removed}:
        fsync_dir(directory)
    return removed
