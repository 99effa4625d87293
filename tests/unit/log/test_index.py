from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from log.index import CorruptIndexError, OffsetIndex, TimeIndex


def test_lookup_finds_the_entry_at_or_before_an_offset(tmp_path: Path) -> None:
    idx = OffsetIndex(tmp_path / "0.index")
    for rel, pos in [(10, 4096), (20, 8192), (35, 12288)]:
        idx.append(rel, pos)
    assert idx.lookup(5) is None
    assert idx.lookup(10) == (10, 4096)
    assert idx.lookup(34) == (20, 8192)
    assert idx.lookup(10**6) == (35, 12288)


def test_entries_must_increase(tmp_path: Path) -> None:
    idx = OffsetIndex(tmp_path / "0.index")
    idx.append(10, 100)
    with pytest.raises(ValueError, match="must increase"):
        idx.append(10, 200)


def test_flush_appends_and_load_reads_back(tmp_path: Path) -> None:
    idx = OffsetIndex(tmp_path / "0.index")
    for i in range(1, 50):
        idx.append(i * 3, i * 100)
    idx.flush(fsync=False)
    idx.append(1000, 10**6)
    idx.flush(fsync=True)
    again = OffsetIndex(idx.path)
    again.load()
    assert list(again.keys) == list(idx.keys) and list(again.values) == list(idx.values)


def test_truncation_rewrites_the_file(tmp_path: Path) -> None:
    idx = OffsetIndex(tmp_path / "0.index")
    for i in range(1, 10):
        idx.append(i, i * 10)
    idx.flush(fsync=False)
    idx.truncate_to_offset(5)
    idx.flush(fsync=False)
    again = OffsetIndex(idx.path)
    again.load()
    assert list(again.keys) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-3], "multiple"),
        (lambda b: b"XXXX" + b[4:], "unknown header"),
        (lambda b: b[:8] + b[16:24] + b[8:16] + b[24:], "not increasing"),
    ],
)
def test_a_damaged_index_fails_its_sanity_check(
    tmp_path: Path, damage: Callable[[bytes], bytes], message: str
) -> None:
    idx = OffsetIndex(tmp_path / "0.index")
    for i in range(1, 5):
        idx.append(i, i * 10)
    idx.flush(fsync=False)
    idx.path.write_bytes(damage(idx.path.read_bytes()))
    with pytest.raises(CorruptIndexError, match=message):
        OffsetIndex(idx.path).load()


def test_missing_index_is_reported_for_rebuild(tmp_path: Path) -> None:
    with pytest.raises(CorruptIndexError, match="missing"):
        OffsetIndex(tmp_path / "nope.index").load()


def test_an_index_pointing_past_the_segment_fails_the_check(tmp_path: Path) -> None:
    idx = OffsetIndex(tmp_path / "0.index")
    idx.append(1, 5000)
    with pytest.raises(CorruptIndexError, match="points at byte 5000"):
        idx.check(4000)


def test_time_index_finds_the_last_entry_before_a_time(tmp_path: Path) -> None:
    ti = TimeIndex(tmp_path / "0.timeindex")
    ti.append(100, 0)
    ti.append(200, 10)
    ti.append(300, 20)
    assert ti.before(100) is None
    assert ti.before(101) == 0
    assert ti.before(301) == 20
    ti.flush(fsync=False)
    assert TimeIndex.read_last(ti.path) == 300
