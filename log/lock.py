"""The directory lock: one process at a time may have a log directory open.

``flock`` on ``<root>/LOCK``, held for as long as the log is open; the kernel releases it when
the process dies, so a crash never leaves a stale lock behind. The file holds the pid of the
holder, so that the error can say who has it. ``flock`` locks belong to the open file, so a
second open in the same process is refused too.

Thread-safe (acquire once, release once).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from hub.errors import LogLockedError
from log import files
from log.partition import storage_error

__all__ = ["DirectoryLock"]


class DirectoryLock:
    """An exclusive lock on a log directory."""

    def __init__(self, root: Path) -> None:
        self.path = files.lock_file(root)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise storage_error(e, f"cannot open the lock file {self.path}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            if holder == os.getpid():
                who = "this process (the log is already open here)"
            raise LogLockedError(
                f"the log directory {self.path.parent} is in use by {who}; stop it, or give "
                "this pipeline its own log path (several hub processes can share one pipeline "
                "only on the Kafka backend, log.backend: kafka)"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            os.close(fd)
            raise storage_error(e, f"cannot write the lock file {self.path}") from e
        self._fd = fd

    def mark_recovered(self) -> None:
        """Note in the file that recovery is over, for read-only views in other processes:
        until then the writer may still cut a tail they have scanned."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, f"{os.getpid()} recovered\n".encode(), 0)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None
