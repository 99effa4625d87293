from __future__ import annotations

import threading

import pytest

from connectors.api import SourceBatch, SourceRecord
from connectors.source.postgres.handoff import HandOff, HandOffClosedError, Waker
from hub.errors import RetriableError


def batch(n: int) -> SourceBatch:
    return SourceBatch([], {"lsn": n})


def test_batches_come_out_in_order_and_none_after_the_timeout() -> None:
    h = HandOff(depth=3)
    for i in range(3):
        assert h.put(batch(i), timeout=0)
    assert [h.take(0.01).checkpoint["lsn"] for _ in range(3)] == [0, 1, 2]  # type: ignore[union-attr]
    assert h.take(0.01) is None


def test_a_full_hand_off_blocks_the_reader_until_the_hub_takes() -> None:
    h = HandOff(depth=1)
    h.put(batch(0))
    assert not h.put(batch(1), timeout=0.01)
    done = threading.Event()

    def reader() -> None:
        h.put(batch(1))
        done.set()

    t = threading.Thread(target=reader)
    t.start()
    assert not done.wait(0.05)
    assert h.take(1) is not None
    assert done.wait(5)
    t.join()


def test_an_error_is_raised_in_its_place_after_the_batches_before_it() -> None:
    h = HandOff()
    h.put(batch(0))
    h.put(RetriableError("connection lost"))
    assert h.take(0.01) is not None
    with pytest.raises(RetriableError, match="connection lost"):
        h.take(0.01)


def test_close_wakes_a_waiting_taker_and_refuses_puts() -> None:
    h = HandOff()
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(h.take(30)))
    t.start()
    h.close()
    t.join(5)
    assert result == [None]
    with pytest.raises(HandOffClosedError):
        h.put(batch(0))


def test_a_waiting_taker_nudges_the_reader() -> None:
    nudged = threading.Event()
    h = HandOff(on_taker=nudged.set)
    assert not h.taker_waiting
    t = threading.Thread(target=lambda: h.take(30))
    t.start()
    assert nudged.wait(5)
    assert h.wait_for_taker(5) and h.taker_waiting
    h.put(batch(0))
    t.join(5)


def test_a_waker_wakes_select_until_cleared() -> None:
    import select

    w = Waker()
    try:
        assert select.select([w], [], [], 0)[0] == []
        w.wake()
        w.wake()
        assert select.select([w], [], [], 0)[0] == [w]
        w.clear()
        assert select.select([w], [], [], 0)[0] == []
    finally:
        w.close()


def test_a_batch_joins_the_one_waiting_for_the_hub_up_to_the_limit() -> None:
    def records(*ns: int) -> list[SourceRecord]:
        return [SourceRecord("t", None, b"%d" % n, 0) for n in ns]

    h = HandOff(depth=3)
    assert not h.merge(SourceBatch([], {"lsn": 0}), 0, 3, 100)  # nothing waiting
    h.put(SourceBatch(records(1, 2), {"lsn": 1}), nbytes=20)
    assert h.merge(SourceBatch(records(3), {"lsn": 2}), 10, 3, 100)
    assert not h.merge(SourceBatch(records(4), {"lsn": 3}), 10, 3, 100)  # 4 records
    h.put(SourceBatch(records(4), {"lsn": 3}), nbytes=60)
    assert not h.merge(SourceBatch(records(5), {"lsn": 4}), 50, 3, 100)  # 110 bytes
    h.put(SourceBatch(records(5), {"lsn": 4}), nbytes=50)
    first, second, third = h.take(0.01), h.take(0.01), h.take(0.01)
    assert first is not None and second is not None and third is not None
    assert (first.records, first.checkpoint) == (records(1, 2, 3), {"lsn": 2})
    assert (second.records, second.checkpoint) == (records(4), {"lsn": 3})
    assert third.checkpoint == {"lsn": 4}


def test_nothing_joins_an_error() -> None:
    h = HandOff()
    h.put(RetriableError("connection lost"))
    assert not h.merge(batch(1), 0, 100, 100)
    h.close()
    with pytest.raises(HandOffClosedError):
        h.merge(batch(2), 0, 100, 100)
