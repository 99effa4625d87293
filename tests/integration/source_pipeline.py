"""A CDC source driven into a log from the test thread, the way the hub's source worker does
it (poll, append the records and the checkpoint atomically, then ``committed``), and the log
read back; shared by the Postgres and MySQL integration tests (their ``pipeline.py`` name
the source class)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

import orjson

from connectors.api import ConnectorContext, Source, SourceBatch, SourceConfig
from connectors.envelope import decode_value
from hub.source_worker import route
from log.api import Log, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

__all__ = ["DEADLINE_S", "SourcePipeline", "wait_until"]

DEADLINE_S = 30.0

S = TypeVar("S", bound=Source[Any])
C = TypeVar("C", bound=SourceConfig)


def wait_until(
    condition: Callable[[], bool],
    what: str,
    deadline_s: float = DEADLINE_S,
    step: Callable[[], object] | None = None,
) -> None:
    """Call ``step`` (which blocks on real work) until ``condition`` holds, or fail."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        if step is not None:
            step()
        else:
            time.sleep(0.05)  # nothing to block on: a condition polled with a deadline


class SourcePipeline(Generic[S, C]):
    """One source writing into an embedded log in ``log_dir`` (or ``log``)."""

    source_class: ClassVar[type[Source[Any]]]

    def __init__(self, log_dir: Path, config: C, *, log: Log | None = None) -> None:
        self.config = config
        self.log = log if log is not None else EmbeddedLog(log_dir)
        self._owns_log = log is None
        self.source: S | None = None
        self.batches = 0

    def _ensure_topic(self, topic: str) -> int:
        self.log.create_topic(topic, TopicConfig(partitions=1))
        return 1

    def start(self) -> S:
        context = ConnectorContext(
            name=self.config.name,
            log=self.log,
            data_dir=Path("/nonexistent"),
            logger=logging.getLogger(f"test.{self.config.name}"),
            topic_partitions=self._ensure_topic,
        )
        source = cast(S, type(self).source_class(self.config, context))
        self.source = source
        source.start(self.log.last_checkpoint(self.config.name))
        for topic in source.topics():
            self._ensure_topic(topic)
        return source

    def step(self, timeout: float = 0.2) -> SourceBatch | None:
        assert self.source is not None
        batch = self.source.poll(timeout)
        if batch is None:
            return None
        writes = route(batch.records, self._ensure_topic)
        self.log.append_checkpointed(self.config.name, writes, batch.checkpoint)
        self.source.committed(batch.checkpoint)
        self.batches += 1
        return batch

    def run_until(
        self, condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S
    ) -> None:
        wait_until(condition, what, deadline_s, step=self.step)

    def stop(self) -> None:
        if self.source is not None:
            self.source.stop()
            self.source = None

    def close(self) -> None:
        self.stop()
        if self._owns_log:
            self.log.close()

    # -- reading the log back -----------------------------------------------------------------

    def records(self, topic: str) -> list[tuple[bytes | None, dict[str, Any] | None]]:
        """(key, envelope or None for a tombstone) of every record of ``topic``, in order."""
        if topic not in self.log.list_topics():
            return []
        tp = TopicPartition(topic, 0)
        out: list[tuple[bytes | None, dict[str, Any] | None]] = []
        offset = self.log.start_offset(tp)
        end = self.log.end_offset(tp)
        while offset < end:
            batch = self.log.read(tp, offset)
            out.extend((r.key, decode_value(r.value)) for r in batch)
            offset = batch[-1].offset + 1
        return out

    def events(self, topic: str) -> list[dict[str, Any]]:
        return [v for _, v in self.records(topic) if v is not None]

    def state(self, topic: str) -> dict[Any, dict[str, Any]]:
        """The table rebuilt from the log: key -> row (a tuple for a composite key)."""
        rows: dict[Any, dict[str, Any]] = {}
        for key, value in self.records(topic):
            k = None if key is None else orjson.loads(key)
            k = (
                tuple(k.values())
                if isinstance(k, dict) and len(k) > 1
                else (next(iter(k.values())) if isinstance(k, dict) else k)
            )
            if value is None:
                rows.pop(k, None)
            elif value["op"] == "t":
                rows.clear()
            elif value["op"] == "d":
                rows.pop(k, None)
            else:
                rows[k] = value["after"]
        return rows
