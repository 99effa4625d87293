"""The conformance suite every source passes, whatever it reads.

Use it by subclassing in a test module and giving the ``source_harness`` fixture::

    class TestSqlPollConformance(SourceConformance):
        @pytest.fixture
        def source_harness(self, tmp_path): ...  # yields a SourceHarness

Pinned down: the lifecycle (start, poll, committed, stop); every change arrives once, as a
Debezium envelope on a topic the source announced; resuming from any batch's checkpoint
continues without a gap or a duplicate; reading twice from the same checkpoint gives the
same events; stop is idempotent, and wakes a poll blocked in another thread.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from connectors.api import Source, SourceBatch
from connectors.envelope import decode_value
from connectors.testing.harness import SourceHarness

__all__ = ["SourceConformance", "drain"]

DEADLINE_S = 20.0
ENVELOPE_FIELDS = {"before", "after", "op", "ts_ms", "source", "transaction"}


def drain(
    source: Source[Any], keys: int, harness: SourceHarness, *, settle: bool = True
) -> list[SourceBatch]:
    """Poll until batches holding ``keys`` events arrived, then (``settle``) a little longer
    for any extra ones."""
    deadline_s = DEADLINE_S
    batches: list[SourceBatch] = []
    seen = 0
    deadline = time.monotonic() + deadline_s
    while seen < keys:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"only {seen} of {keys} events arrived within {deadline_s} s")
        batch = source.poll(min(remaining, 1.0))
        if batch is not None:
            batches.append(batch)
            seen += len(_events(batch))
    settled = time.monotonic() + (harness.settle_s if settle else 0.0)
    while (left := settled - time.monotonic()) > 0:
        batch = source.poll(left)
        if batch is not None:
            batches.append(batch)
    return batches


def _events(batch: SourceBatch) -> list[tuple[bytes | None, dict[str, Any]]]:
    """(key, envelope) of the batch's events; tombstones left out."""
    out = []
    for record in batch.records:
        value = decode_value(record.value)
        if value is not None:
            out.append((record.key, value))
    return out


def _keys(batches: list[SourceBatch]) -> list[bytes | None]:
    return [key for b in batches for key, _ in _events(b)]


class SourceConformance:
    """Tests every source must pass; see the module doc."""

    def _source(self, harness: SourceHarness, tmp_path: Path) -> Source[Any]:
        return harness.make("conformance", tmp_path / "data")

    def test_every_change_arrives_once_as_an_envelope(
        self, source_harness: SourceHarness, tmp_path: Path
    ) -> None:
        expected = source_harness.produce(5)
        source = self._source(source_harness, tmp_path)
        source.start(None)
        try:
            batches = drain(source, len(expected), source_harness)
            topics = set(source.topics())
            for batch in batches:
                for record in batch.records:
                    assert record.topic in topics, f"{record.topic} not in topics() {topics}"
                for key, envelope in _events(batch):
                    assert set(envelope) == ENVELOPE_FIELDS, envelope
                    assert envelope["op"] in ("c", "u", "d", "r", "t")
                    assert isinstance(envelope["ts_ms"], int)
                    assert isinstance(envelope["source"], dict)
                    assert key is not None
                assert isinstance(batch.checkpoint, dict)
            assert Counter(_keys(batches)) == Counter(expected)
            source.committed(batches[-1].checkpoint)
        finally:
            source.stop()

    def test_resume_from_a_checkpoint_has_no_gap_and_no_duplicate(
        self, source_harness: SourceHarness, tmp_path: Path
    ) -> None:
        expected = source_harness.produce(5)
        first = self._source(source_harness, tmp_path)
        first.start(None)
        try:
            batch = drain(first, 1, source_harness, settle=False)[0]
        finally:
            first.stop()
        before = _keys([batch])
        assert len(before) < len(expected), "make the harness's batches smaller than 5 changes"

        later = source_harness.produce(3)
        second = self._source(source_harness, tmp_path)
        second.start(batch.checkpoint)
        try:
            after = _keys(drain(second, len(expected) + len(later) - len(before), source_harness))
        finally:
            second.stop()
        assert Counter(before + after) == Counter(expected + later)

    def test_reading_again_from_the_same_checkpoint_gives_the_same_events(
        self, source_harness: SourceHarness, tmp_path: Path
    ) -> None:
        expected = source_harness.produce(4)
        runs = []
        for _ in range(2):
            source = self._source(source_harness, tmp_path)
            source.start(None)
            try:
                batches = drain(source, len(expected), source_harness)
            finally:
                source.stop()
            runs.append(
                [(key, e["op"], e["before"], e["after"]) for b in batches for key, e in _events(b)]
            )
        assert runs[0] == runs[1]

    def test_stop_is_idempotent_and_poll_after_stop_returns_nothing(
        self, source_harness: SourceHarness, tmp_path: Path
    ) -> None:
        source_harness.produce(2)
        source = self._source(source_harness, tmp_path)
        source.start(None)
        source.stop()
        source.stop()
        started = time.monotonic()
        assert source.poll(5.0) is None
        assert time.monotonic() - started < 2.0, "poll after stop must return at once"

    def test_idle_poll_returns_none_within_its_timeout(
        self, source_harness: SourceHarness, tmp_path: Path
    ) -> None:
        expected = source_harness.produce(2)
        source = self._source(source_harness, tmp_path)
        source.start(None)
        try:
            drain(source, len(expected), source_harness)
            started = time.monotonic()
            assert source.poll(0.3) is None
            assert time.monotonic() - started < 2.0
        finally:
            source.stop()

    def test_stop_from_another_thread_wakes_a_blocked_poll(
        self, source_harness: SourceHarness, tmp_path: Path
    ) -> None:
        expected = source_harness.produce(2)
        source = self._source(source_harness, tmp_path)
        source.start(None)
        try:
            drain(source, len(expected), source_harness)
            polling = threading.Event()
            result: list[SourceBatch | None] = []

            def block() -> None:
                polling.set()
                result.append(source.poll(60.0))

            poller = threading.Thread(target=block, name="conformance-poll", daemon=True)
            started = time.monotonic()
            poller.start()
            assert polling.wait(DEADLINE_S)
            source.stop()
            poller.join(DEADLINE_S)
            assert not poller.is_alive(), "poll() still blocked after stop()"
            assert time.monotonic() - started < 10.0
            assert result == [None]
        finally:
            source.stop()
