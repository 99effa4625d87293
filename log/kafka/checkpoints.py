"""Source checkpoints on Kafka: a compacted topic, one record per checkpointed append.

Topic ``__changehub_checkpoints`` (the name can be changed), one partition,
``cleanup.policy=compact``, no retention. Each record has key = the source name (UTF-8) and
value = JSON::

    {"v": 1, "source": "shop", "checkpoint": {...the source's position...}}

It is produced inside the same Kafka transaction as the records it covers (see
:mod:`log.kafka.producer`), so a ``read_committed`` reader sees both or neither. Records
written by earlier versions also carry ``"ends": [[topic, partition, end], ...]``, the
offset after the last record of every partition the append wrote; readers ignore it. It is
no longer written because the transaction already makes records and checkpoint atomic, and
knowing the ends meant waiting for the records' acknowledgements before producing the
checkpoint: a second round trip in every transaction.

:class:`CheckpointReader` keeps the latest checkpoint per source in memory and reads the topic
from where it stopped up to its stable end whenever asked, so a checkpoint written by another
process (a hub that took a source over) is seen at the next :meth:`CheckpointReader.last`.

Thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from hub.errors import UsageError
from log.api import TopicPartition
from log.kafka.consumer import Reader

__all__ = ["CheckpointReader", "decode", "encode"]

_log = logging.getLogger(__name__)

_VERSION = 1
_BATCH = 10_000


def encode(source: str, checkpoint: Mapping[str, Any]) -> bytes:
    """The checkpoint record's value; UsageError when the checkpoint is not JSON."""
    try:
        return orjson.dumps({"v": _VERSION, "source": source, "checkpoint": dict(checkpoint)})
    except TypeError as e:
        raise UsageError(
            f"the checkpoint of source {source!r} cannot be stored: {e}; a checkpoint must "
            "be JSON: str keys, and str, int, float, bool, None, list or dict values"
        ) from e


def decode(raw: bytes | None) -> tuple[str, dict[str, Any]]:
    """Source name and checkpoint of a checkpoint record (``ends``, if any, is ignored)."""
    d = orjson.loads(raw or b"null")
    if not isinstance(d, dict) or d.get("v") != _VERSION:
        raise ValueError("not a version 1 checkpoint record")
    return str(d["source"]), dict(d["checkpoint"])


class CheckpointReader:
    """The latest checkpoint of every source, read from the checkpoint topic."""

    def __init__(self, tp: TopicPartition, reader: Reader) -> None:
        self.tp = tp
        self._reader = reader
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[int, dict[str, Any]]] = {}
        self._next = 0

    def remember(self, source: str, checkpoint: Mapping[str, Any], offset: int) -> None:
        """Take in a checkpoint this process just committed at ``offset``."""
        with self._lock:
            self._keep(source, dict(checkpoint), offset)

    def _keep(self, source: str, checkpoint: dict[str, Any], offset: int) -> None:
        known = self._latest.get(source)
        if known is None or known[0] <= offset:
            self._latest[source] = (offset, checkpoint)

    def last(self, source: str, closed: Callable[[], bool]) -> dict[str, Any] | None:
        """The latest checkpoint of ``source``, after reading the topic up to its stable end."""
        with self._lock:
            while True:
                records = self._reader.fetch({self.tp: self._next}, _BATCH, 1 << 30, 0.0, closed)
                if not records:
                    break
                for r in records:
                    try:
                        name, checkpoint = decode(r.value)
                    except (ValueError, KeyError, TypeError) as e:
                        # on a shared cluster anyone may write here; one stray record must
                        # not stop every source, and it cannot be a checkpoint of ours
                        _log.warning(
                            "skipping record at offset %d of %s: not a changehub checkpoint (%s)",
                            r.offset,
                            self.tp,
                            e,
                        )
                        continue
                    self._keep(name, checkpoint, r.offset)
                self._next = records[-1].offset + 1
            known = self._latest.get(source)
            return None if known is None else dict(known[1])

    def close(self) -> None:
        with self._lock:
            self._reader.close()
