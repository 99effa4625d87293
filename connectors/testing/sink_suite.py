"""The conformance suite every sink passes, whatever it writes to.

Use it by subclassing in a test module and giving the ``sink_harness`` fixture::

    class TestSqlSinkConformance(SinkConformance):
        @pytest.fixture
        def sink_harness(self, tmp_path): ...  # yields a SinkHarness

The records are :func:`~connectors.testing.events.change_stream`'s: inserts, updates,
deletes with tombstones, re-inserts, a column that appears later, two topics, three
partitions. Pinned down: flush makes everything written durable and returns the offsets
after it; writing the same records twice (in one run, or after a restart from older
offsets) leaves the target as writing them once; a restart after unflushed writes loses
nothing once the hub replays; stop is idempotent and safe from another thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from connectors.api import Offsets, Sink, offsets_after
from connectors.testing.events import change_stream
from connectors.testing.harness import SinkHarness
from hub.errors import ConnectorError
from log.api import LogRecord, TopicPartition

__all__ = ["SinkConformance", "replay_from"]

DEADLINE_S = 20.0


def replay_from(records: list[LogRecord], offsets: Offsets) -> list[LogRecord]:
    """The records a hub would fetch from ``offsets`` (a partition absent: from its start)."""
    return [r for r in records if r.offset >= offsets.get(r.tp, 0)]


class SinkConformance:
    """Tests every sink must pass; see the module doc."""

    def _sink(self, harness: SinkHarness, tmp_path: Path) -> Sink[Any]:
        return harness.make("conformance", tmp_path / "data")

    def _start(self, sink: Sink[Any], resume: Offsets | None = None) -> Offsets:
        resume = resume if resume is not None else {}
        chosen = sink.start(dict(resume))
        return {**resume, **chosen}

    def test_flush_makes_every_record_durable_and_returns_the_offsets_after_them(
        self, sink_harness: SinkHarness, tmp_path: Path
    ) -> None:
        records = change_stream()
        sink = self._sink(sink_harness, tmp_path)
        self._start(sink)
        try:
            sink.write(records)
            offsets = sink.flush()
        finally:
            sink.stop()
        assert offsets == offsets_after(records)
        assert sink_harness.state() == sink_harness.expected(records)

    def test_flushes_in_small_batches_end_in_the_same_state(
        self, sink_harness: SinkHarness, tmp_path: Path
    ) -> None:
        records = change_stream()
        sink = self._sink(sink_harness, tmp_path)
        self._start(sink)
        try:
            for start in range(0, len(records), 7):
                sink.write(records[start:start + 7])
                sink.flush()
            offsets = sink.flush()
        finally:
            sink.stop()
        assert offsets == offsets_after(records)
        assert sink_harness.state() == sink_harness.expected(records)

    def test_writing_the_same_records_twice_leaves_the_target_as_once(
        self, sink_harness: SinkHarness, tmp_path: Path
    ) -> None:
        records = change_stream()
        sink = self._sink(sink_harness, tmp_path)
        self._start(sink)
        try:
            sink.write(records)
            sink.flush()
            sink.write(records)
            sink.flush()
        finally:
            sink.stop()
        assert sink_harness.state() == sink_harness.expected(records)

    def test_replay_after_a_restart_from_older_offsets_is_idempotent(
        self, sink_harness: SinkHarness, tmp_path: Path
    ) -> None:
        """A crash after flush but before the hub committed: the hub resumes from older
        offsets and sends the records again."""
        records = change_stream()
        first = self._sink(sink_harness, tmp_path)
        self._start(first)
        try:
            first.write(records)
            first.flush()
        finally:
            first.stop()

        stale = {tp: 0 for tp in offsets_after(records)}
        second = self._sink(sink_harness, tmp_path)
        positions = self._start(second, stale)
        try:
            if sink_harness.stores_offsets:
                assert positions == offsets_after(records)
            second.write(replay_from(records, positions))
            second.write(records)  # and even when the hub ignores start()'s answer
            assert second.flush() == offsets_after(records)
        finally:
            second.stop()
        assert sink_harness.state() == sink_harness.expected(records)

    def test_unflushed_writes_are_redone_after_a_restart(
        self, sink_harness: SinkHarness, tmp_path: Path
    ) -> None:
        records = change_stream()
        half = len(records) // 2
        first = self._sink(sink_harness, tmp_path)
        self._start(first)
        try:
            first.write(records[:half])
            committed = first.flush()
            first.write(records[half:])  # then a crash: never flushed
        finally:
            first.stop()

        second = self._sink(sink_harness, tmp_path)
        positions = self._start(second, committed)
        try:
            second.write(replay_from(records, positions))
            assert second.flush() == offsets_after(records)
        finally:
            second.stop()
        assert sink_harness.state() == sink_harness.expected(records)

    def test_flush_without_writes_changes_nothing(
        self, sink_harness: SinkHarness, tmp_path: Path
    ) -> None:
        records = change_stream()
        sink = self._sink(sink_harness, tmp_path)
        self._start(sink)
        try:
            sink.write(records)
            offsets = sink.flush()
            assert sink.flush() == offsets
        finally:
            sink.stop()
        assert sink_harness.state() == sink_harness.expected(records)

    def test_stop_from_another_thread_ends_work_cleanly_and_is_idempotent(
        self, sink_harness: SinkHarness, tmp_path: Path
    ) -> None:
        records = change_stream()
        sink = self._sink(sink_harness, tmp_path)
        self._start(sink)
        flushed_once = threading.Event()
        unexpected: list[BaseException] = []
        committed: list[Offsets] = [{}]

        def work() -> None:
            try:
                for start in range(0, len(records), 5):
                    sink.write(records[start:start + 5])
                    committed[0] = sink.flush()
                    flushed_once.set()
            except ConnectorError:
                pass  # refusing to work after stop is fine; hanging or crashing is not
            except BaseException as exc:
                unexpected.append(exc)
            finally:
                flushed_once.set()

        worker = threading.Thread(target=work, name="conformance-sink", daemon=True)
        worker.start()
        assert flushed_once.wait(DEADLINE_S)
        sink.stop()
        sink.stop()
        worker.join(DEADLINE_S)
        assert not worker.is_alive(), "write/flush still running long after stop()"
        assert not unexpected, f"write/flush after stop raised {unexpected[0]!r}"

        second = self._sink(sink_harness, tmp_path)
        positions = self._start(second, committed[0])
        try:
            second.write(replay_from(records, positions))
            second.flush()
        finally:
            second.stop()
        assert sink_harness.state() == sink_harness.expected(records)

    def test_an_empty_target_starts_where_the_hub_says(
        self, sink_harness: SinkHarness, tmp_path: Path
    ) -> None:
        resume = {TopicPartition(t, 0): 3 for t in {r.topic for r in change_stream()}}
        sink = self._sink(sink_harness, tmp_path)
        try:
            positions = self._start(sink, resume)
        finally:
            sink.stop()
        assert positions == resume
