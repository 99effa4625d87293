from __future__ import annotations

import os
from pathlib import Path

import pytest

from log.api import Record
from log.batch import encode, set_base_offset
from log.segment import SEGMENT_HEADER, Segment, SegmentError, SegmentOptions

OPTS = SegmentOptions(index_interval_bytes=100)


def fill(seg: Segment, batches: int, per_batch: int = 5, ts: int = 1000) -> None:
    for _ in range(batches):
        b = encode([Record(b"k", b"v" * 40, ts)] * per_batch, ts)
        set_base_offset(b, seg.next_offset)
        seg.append(b, seg.next_offset, ts)
        ts += 10


def test_append_tracks_offsets_size_and_timestamps(tmp_path: Path) -> None:
    seg = Segment.create(tmp_path, 100, OPTS)
    fill(seg, 10)
    assert seg.next_offset == 150
    assert seg.size == os.path.getsize(seg.path)
    assert seg.max_timestamp == 1090
    assert len(seg.offset_index) > 0
    seg.close()


def test_locate_finds_the_batch_holding_an_offset(tmp_path: Path) -> None:
    seg = Segment.create(tmp_path, 0, OPTS)
    fill(seg, 20)
    for offset in (0, 4, 5, 57, 99):
        _, h = seg.locate(offset, seg.size)
        assert h is not None and h.base_offset <= offset < h.next_offset
    assert seg.locate(100, seg.size) == (seg.size, None)
    seg.close()


def test_scan_rebuilds_the_same_indexes_as_appending(tmp_path: Path) -> None:
    seg = Segment.create(tmp_path, 0, OPTS)
    fill(seg, 30)
    keys, values = list(seg.offset_index.keys), list(seg.offset_index.values)
    seg.close()
    again = Segment.open_for_scan(tmp_path, 0, OPTS)
    result = again.scan()
    assert result.error is None and result.next_offset == 150
    assert (list(again.offset_index.keys), list(again.offset_index.values)) == (keys, values)
    again.close()


def test_recover_cuts_a_torn_tail(tmp_path: Path) -> None:
    seg = Segment.create(tmp_path, 0, OPTS)
    fill(seg, 3)
    good = seg.size
    seg.close()
    with open(tmp_path / "00000000000000000000.log", "ab") as f:
        f.write(b"\x01\x02\x03 half a batch")
    again = Segment.open_for_scan(tmp_path, 0, OPTS)
    result = again.recover()
    assert result.error is not None
    assert again.size == good == os.path.getsize(again.path)
    assert again.next_offset == 15
    again.close()


def test_recover_rewrites_a_missing_file_header(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000000.log").write_bytes(b"CH")
    seg = Segment.open_for_scan(tmp_path, 0, OPTS)
    seg.recover()
    assert seg.path.read_bytes() == SEGMENT_HEADER
    seg.close()


def test_truncate_to_drops_batches_and_restores_stats(tmp_path: Path) -> None:
    seg = Segment.create(tmp_path, 0, OPTS)
    fill(seg, 10)
    seg.truncate_to(25)
    assert seg.next_offset == 25
    assert seg.max_timestamp == 1040
    assert seg.last_batch is not None and seg.last_batch.base_offset == 20
    with pytest.raises(SegmentError, match="does not start a batch"):
        seg.truncate_to(22)
    fill(seg, 1)
    assert seg.next_offset == 30
    seg.close()


def test_a_closed_segment_cut_short_is_reported(tmp_path: Path) -> None:
    seg = Segment.create(tmp_path, 0, OPTS)
    fill(seg, 10)
    seg.seal()
    pos, _ = seg.locate(45, seg.size)
    seg.close()
    os.truncate(tmp_path / "00000000000000000000.log", pos)
    closed = Segment.open_closed(tmp_path, 0, 50, OPTS)
    with pytest.raises(SegmentError, match="cut short"):
        closed.locate(47, closed.size)
    closed.close()
