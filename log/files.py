"""Names of every file and directory the embedded log keeps, in one place.

Layout of a log directory (see FORMAT.md)::

    <root>/LOCK                              held with flock while a process has the log open
    <root>/CLEAN_SHUTDOWN                    written by a clean close, removed by the next open
    <root>/topics/<topic>/topic.json         the topic's config
    <root>/topics/<topic>/<partition>/       one directory per partition
        00000000000000000000.log             segment, named by its base offset (20 digits)
        00000000000000000000.index           sparse offset index of that segment
        00000000000000000000.timeindex       time index of that segment
    <root>/internal/checkpoints/             the source checkpoint log (a partition directory)
    <root>/internal/groups/<group>.json      committed offsets of one sink group

    <root>/topics/<topic>/<partition>/cleaning/   compacted segments before they are swapped in
    <root>/internal/staging/<topic>/         a topic being created, renamed into topics/ when whole
    <root>/internal/trash/                   deleted topics, renamed here before their removal

Temporary files end in ``.tmp`` (written, fsync'd, then renamed over their final name).
Recovery deletes temporary files, ``cleaning/``, ``staging/`` and ``trash/``: each holds
only work that had not reached its atomic rename when the process stopped.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "INDEX_SUFFIX",
    "LOG_SUFFIX",
    "TIMEINDEX_SUFFIX",
    "TMP_SUFFIX",
    "TOPIC_NAME",
    "checkpoint_dir",
    "clean_shutdown_file",
    "cleaning_dir",
    "group_file",
    "group_from_file",
    "groups_dir",
    "index_file",
    "lock_file",
    "log_file",
    "offset_from_name",
    "partition_dir",
    "segment_bases",
    "staging_dir",
    "time_index_file",
    "topic_config_file",
    "topic_dir",
    "topics_dir",
    "trash_dir",
]

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"
TMP_SUFFIX = ".tmp"

# Kafka's rule for topic names, so that a pipeline moves to the kafka backend unchanged.
TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

_OFFSET_DIGITS = 20


def lock_file(root: Path) -> Path:
    return root / "LOCK"


def clean_shutdown_file(root: Path) -> Path:
    return root / "CLEAN_SHUTDOWN"


def topics_dir(root: Path) -> Path:
    return root / "topics"


def topic_dir(root: Path, topic: str) -> Path:
    return topics_dir(root) / topic


def topic_config_file(root: Path, topic: str) -> Path:
    return topic_dir(root, topic) / "topic.json"


def partition_dir(root: Path, topic: str, partition: int) -> Path:
    return topic_dir(root, topic) / str(partition)


def checkpoint_dir(root: Path) -> Path:
    return root / "internal" / "checkpoints"


def staging_dir(root: Path) -> Path:
    return root / "internal" / "staging"


def trash_dir(root: Path) -> Path:
    return root / "internal" / "trash"


def cleaning_dir(partition_directory: Path) -> Path:
    return partition_directory / "cleaning"


def groups_dir(root: Path) -> Path:
    return root / "internal" / "groups"


def group_file(root: Path, group: str) -> Path:
    """A group's offsets file. Group names are free text, so the name is hex-encoded."""
    return groups_dir(root) / (group.encode().hex() + ".json")


def group_from_file(path: Path) -> str | None:
    """The group a file in :func:`groups_dir` belongs to, or None for a foreign file."""
    if path.suffix != ".json":
        return None
    try:
        return bytes.fromhex(path.stem).decode()
    except ValueError:
        return None


def _segment_name(base_offset: int) -> str:
    return str(base_offset).zfill(_OFFSET_DIGITS)


def log_file(directory: Path, base_offset: int) -> Path:
    return directory / (_segment_name(base_offset) + LOG_SUFFIX)


def index_file(directory: Path, base_offset: int) -> Path:
    return directory / (_segment_name(base_offset) + INDEX_SUFFIX)


def time_index_file(directory: Path, base_offset: int) -> Path:
    return directory / (_segment_name(base_offset) + TIMEINDEX_SUFFIX)


def offset_from_name(name: str) -> int | None:
    """The base offset in a segment file name (``000…042.log`` -> 42), else None."""
    stem = name.split(".", 1)[0]
    if len(stem) != _OFFSET_DIGITS or not stem.isdigit():
        return None
    return int(stem)


def segment_bases(directory: Path) -> list[int]:
    """Base offsets of the segments in a partition directory, ascending."""
    bases = []
    for entry in directory.iterdir():
        if entry.name.endswith(LOG_SUFFIX):
            base = offset_from_name(entry.name)
            if base is not None:
                bases.append(base)
    return sorted(bases)


def read_lock_state(root: Path) -> str | None:
    """What the writing process wrote into ``<root>/LOCK``: ``"<pid>"`` while it recovers,
    ``"<pid> recovered"`` after (None: no file)."""
    try:
        return lock_file(root).read_text().strip()
    except OSError:
        return None
