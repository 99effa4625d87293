"""The sink's counters: documents/s, bulk latency, lag in records and seconds.

Kept on the sink object (``SearchSink.metrics()`` returns a plain dict) for the REST and
Prometheus layer to read. Lag in records is the log's end offset minus the flushed offset,
summed over the sink's partitions; lag in seconds is how long the oldest record not yet
flushed has been in the log (0 when the sink is caught up).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hub.errors import OffsetOutOfRangeError, UnknownTopicError
from log.api import Log, TopicPartition

if TYPE_CHECKING:
    from connectors.sink.search.bulk import BulkResult
    from connectors.sink.search.documents import Action

__all__ = ["SinkMetrics"]


class SinkMetrics:
    """Counters updated by the sink's thread, read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.records = 0
        self.columnar = 0  # of them, taken a batch at a time (the sink's columnar path)
        self.indexed = 0
        self.deleted = 0
        self.conflicts = 0
        self.rejected = 0
        self.retried = 0
        self.truncates = 0
        self.dead_letters = 0
        self.last_flush_at_ms = 0

    def sent(self, actions: Sequence[Action], result: BulkResult) -> None:
        with self._lock:
            deletes = sum(1 for a in actions if a.op == "delete")
            ok = result.done
            self.deleted += min(deletes, ok)
            self.indexed += max(0, ok - deletes)
            self.conflicts += result.conflicts
            self.rejected += len(result.rejected)
            self.retried += result.retried

    def flushed(self) -> None:
        with self._lock:
            self.last_flush_at_ms = int(time.time() * 1000)

    def snapshot(
        self,
        flushed: Mapping[TopicPartition, int],
        log: Log,
        *,
        latencies: list[float],
        requests: int,
        bytes_sent: int,
    ) -> dict[str, Any]:
        with self._lock:
            elapsed = max(time.monotonic() - self._started, 1e-9)
            out: dict[str, Any] = {
                "records": self.records,
                "records_columnar": self.columnar,
                "documents_indexed": self.indexed,
                "documents_deleted": self.deleted,
                "version_conflicts": self.conflicts,
                "documents_rejected": self.rejected,
                "operations_retried": self.retried,
                "truncates": self.truncates,
                "dead_letters": self.dead_letters,
                "documents_per_second": (self.indexed + self.deleted) / elapsed,
                "bulk_requests": requests,
                "bulk_bytes": bytes_sent,
            }
        if latencies:
            ordered = sorted(latencies)
            out["bulk_latency_p50_s"] = statistics.median(ordered)
            out["bulk_latency_p99_s"] = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        lag_records, lag_seconds = _lag(flushed, log)
        out["lag_records"] = lag_records
        out["lag_seconds"] = lag_seconds
        return out


def _lag(flushed: Mapping[TopicPartition, int], log: Log) -> tuple[int, float]:
    behind = 0
    oldest_ms: int | None = None
    for tp, offset in flushed.items():
        try:
            end = log.end_offset(tp)
            if end <= offset:
                continue
            waiting = log.read(tp, offset, max_records=1)
        except (UnknownTopicError, OffsetOutOfRangeError):
            continue  # deleted meanwhile, or retention passed the sink: nothing to measure
        behind += end - offset
        if waiting:
            ts = waiting[0].timestamp_ms
            oldest_ms = ts if oldest_ms is None else min(oldest_ms, ts)
    seconds = 0.0 if oldest_ms is None else max(0.0, time.time() - oldest_ms / 1000)
    return behind, seconds
