"""The reader-to-hub queue of :mod:`connectors.source.mysql.handoff`."""

from __future__ import annotations

import threading

import pytest

from connectors.api import SourceRecord
from connectors.source.mysql.checkpoint import Checkpoint, Position
from connectors.source.mysql.handoff import HandOff, HandOffClosedError
from connectors.source.mysql.streaming import Chunk


def chunk(n: int, pos: int) -> Chunk:
    records = [SourceRecord("t", b"k", b"v", 0) for _ in range(n)]
    return Chunk(records, Checkpoint(Position(None, "f", pos)))


def test_ready_chunks_are_taken_as_one_batch_with_the_last_checkpoint() -> None:
    h = HandOff(capacity=100, max_events=10)
    for pos in (1, 2, 3):
        h.put(chunk(3, pos))
    batch = h.take(0.1)
    assert batch is not None and len(batch.records) == 9 and batch.checkpoint["pos"] == 3


def test_a_batch_stops_before_max_events_but_a_big_chunk_still_passes() -> None:
    h = HandOff(capacity=100, max_events=5)
    h.put(chunk(4, 1))
    h.put(chunk(4, 2))
    h.put(chunk(50, 3))
    sizes = [len(b.records) for b in (h.take(0.1), h.take(0.1), h.take(0.1)) if b is not None]
    assert sizes == [4, 4, 50]


def test_put_blocks_while_full_and_an_empty_queue_takes_any_chunk() -> None:
    h = HandOff(capacity=5, max_events=100)
    assert h.put(chunk(50, 1), timeout=0.01)  # larger than the capacity, queue empty
    assert not h.put(chunk(1, 2), timeout=0.05)
    taken = threading.Event()

    def take() -> None:
        h.take(1.0)
        taken.set()

    threading.Thread(target=take).start()
    assert h.put(chunk(1, 2), timeout=5.0)
    assert taken.wait(5.0)


def test_an_error_comes_after_the_batches_before_it() -> None:
    h = HandOff(capacity=100, max_events=100)
    h.put(chunk(2, 1))
    h.put(RuntimeError("boom"))
    batch = h.take(0.1)
    assert batch is not None and batch.checkpoint["pos"] == 1
    with pytest.raises(RuntimeError, match="boom"):
        h.take(0.1)


def test_empty_chunks_carry_heartbeat_checkpoints() -> None:
    h = HandOff(capacity=10, max_events=10)
    h.put(chunk(0, 7))
    batch = h.take(0.1)
    assert batch is not None and batch.records == [] and batch.checkpoint["pos"] == 7


def test_closing_wakes_a_blocked_put() -> None:
    h = HandOff(capacity=1, max_events=10)
    h.put(chunk(1, 1))
    threading.Timer(0.05, h.close).start()
    with pytest.raises(HandOffClosedError):
        h.put(chunk(1, 2))
