"""The whole changehub exception tree, in one place.

Every error changehub raises on purpose is a subclass of :class:`ChangehubError`. The tree
splits misuse (bad configuration or arguments: fix your input, exit code 2) from runtime
failures (something went wrong doing the work: exit code 1), and runtime failures into
retriable ones (the supervisor backs off and tries again) and fatal ones (the connector goes
to FAILED with the error and the rest of the hub keeps running)::

    ChangehubError
    ├── UsageError                  bad input from the user; CLI exit code 2
    │   └── ConfigError             a pipeline file is wrong: file, line, key path, expected
    ├── LogError                    the internal log (log/)
    │   ├── UnknownTopicError       topic or partition does not exist
    │   ├── OffsetOutOfRangeError   offset below the start or past the end of a partition
    │   ├── CorruptLogError         bytes on disk fail validation; names topic/partition/offset
    │   ├── LogLockedError          another process holds the log directory
    │   ├── LogStorageError         the disk said no: full (ENOSPC), read-only, permissions
    │   │   ├── LogFullError        the disk is full; also a RetriableError: the writer
    │   │   │                       backs off and tries again until space is freed
    │   │   └── SourceFencedError   Kafka: another process took the source over (fenced)
    │   └── LogClosedError          the log was closed while the call was waiting
    └── ConnectorError              raised by sources and sinks
        ├── RetriableError          transient: connection lost, 429/503, lock timeout
        ├── FatalError              permanent until a human acts: auth failed, missing table
        │   ├── SchemaError         the source's schema no longer fits (dropped column …)
        │   └── DecodeError         a change stream's bytes are not what the server sends
        │                           (pgoutput message, binlog row event): never guessed at
        └── RecordError             one record cannot be written; goes to the dead-letter
                                    topic when ``errors.tolerance: all``

Messages are written for the person who has to fix the problem: what was wrong, where, and
what to do. They never contain secrets: connectors pass DSNs through
:func:`hub.secrets.mask` before putting them into a message.
"""

from __future__ import annotations

__all__ = [
    "ChangehubError",
    "ConfigError",
    "ConnectorError",
    "CorruptLogError",
    "DecodeError",
    "FatalError",
    "LogClosedError",
    "LogError",
    "LogFullError",
    "LogLockedError",
    "LogStorageError",
    "OffsetOutOfRangeError",
    "RecordError",
    "RetriableError",
    "SchemaError",
    "SourceFencedError",
    "UnknownTopicError",
    "UsageError",
]


class ChangehubError(Exception):
    """Base of every error changehub raises on purpose."""


class UsageError(ChangehubError):
    """The user asked for something that cannot be done as asked (CLI exit code 2)."""


class ConfigError(UsageError):
    """A pipeline file is invalid.

    ``problems`` holds one line per problem, each naming file, line, key path, the bad
    value and what was expected, so that all of them can be fixed in one go.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class LogError(ChangehubError):
    """Base of errors raised by the internal log."""


class UnknownTopicError(LogError):
    """The topic (or partition of it) does not exist."""


class OffsetOutOfRangeError(LogError):
    """An offset lies below the partition's start offset or past its end offset."""

    def __init__(self, message: str, *, start: int, end: int) -> None:
        super().__init__(message)
        self.start = start
        self.end = end


class CorruptLogError(LogError):
    """Bytes on disk failed validation (CRC, framing, version) where they must not."""

    def __init__(self, message: str, *, topic: str, partition: int, offset: int | None) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset


class LogLockedError(LogError):
    """Another process has the log directory open."""


class LogStorageError(LogError):
    """The file system refused a write: disk full, read-only, permission denied."""


class SourceFencedError(LogStorageError):
    """Another hub process took this source over: Kafka fenced this process's transactional
    producer. The hub stands the source by in this process (only one may run it)."""


class LogClosedError(LogError):
    """The log was closed (possibly while the caller was waiting on it)."""


class ConnectorError(ChangehubError):
    """Base of errors raised by sources and sinks."""


class RetriableError(ConnectorError):
    """A transient failure; the supervisor retries with exponential backoff and jitter."""


class LogFullError(LogStorageError, RetriableError):
    """The disk (or the user's quota) is full. Retriable, because the log undoes a write it
    could not finish (a partial batch is cut off, a checkpointed append rolled back), so a
    source simply starts again from its last checkpoint once space is freed (nothing lost,
    nothing twice), and a sink from its committed offsets (idempotent writes). A write that
    could not be undone marks its partition failed instead, and the retry then meets a plain
    LogStorageError (not retried: the log must be reopened)."""


class FatalError(ConnectorError):
    """A failure that retrying will not fix; the connector goes to FAILED."""


class SchemaError(FatalError):
    """The source's schema does not fit the configuration (missing table, dropped column…)."""


class DecodeError(FatalError):
    """Bytes of a change stream (a pgoutput message, a binlog row event) are malformed.

    Raised instead of decoding a guess: truncated or overlong data, an unknown kind byte, a
    value that does not read as its column's type. Retrying reads the same bytes again, so
    it is fatal; the message says where in the stream (LSN, binlog file and position).
    """


class RecordError(ConnectorError):
    """One record cannot be written to the target (mapping conflict, bad value…).

    With ``errors.tolerance: all`` it goes to the dead-letter topic with ``reason``; with
    ``none`` (the default) the sink fails.
    """

    def __init__(self, reason: str, *, topic: str, partition: int, offset: int) -> None:
        super().__init__(f"{topic}[{partition}]@{offset}: {reason}")
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
