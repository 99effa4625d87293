"""Opening after a clean close (resume from the indexes) and after a crash (full scan)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import ChangehubError
from log.api import LogRecord, Record, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog
from log.files import clean_shutdown_file
from log.segment import Segment

from .conftest import OpenLog

TP = TopicPartition("t", 0)


def state(seg: Segment) -> tuple[object, ...]:
    return (
        seg.next_offset,
        seg.size,
        seg.max_timestamp,
        seg.created_ms,
        seg.last_batch,
        list(seg.offset_index.keys),
        list(seg.offset_index.values),
    )


def fill(log: EmbeddedLog, n: int) -> None:
    for i in range(n):
        log.append(TP, [Record(b"k", b"v" * 50, 1000 + (i * 7) % 13)] * 3)


def test_a_clean_close_leaves_a_marker_that_the_next_open_takes(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("t", TopicConfig())
    marker = clean_shutdown_file(log.root)
    assert not marker.exists()
    log.close()
    assert marker.exists()
    again = open_log()
    assert not marker.exists()
    again._lock.release()  # a crash: no close, no marker
    open_log()
    assert not marker.exists()


def test_resuming_after_a_clean_close_gives_the_state_a_full_scan_gives(
    open_log: OpenLog,
) -> None:
    log = open_log(index_interval_bytes=200)
    log.create_topic("t", TopicConfig(segment_bytes=20_000))
    fill(log, 150)
    log.close()
    resumed = open_log(index_interval_bytes=200)
    resumed_state = state(resumed._partition(TP).active)
    resumed.close()
    clean_shutdown_file(resumed.root).unlink()
    scanned = open_log(index_interval_bytes=200)
    assert state(scanned._partition(TP).active) == resumed_state
    fill(scanned, 5)
    assert scanned.end_offset(TP) == 465


def test_appends_after_a_resume_continue_offsets_and_indexes(open_log: OpenLog) -> None:
    log = open_log(index_interval_bytes=200)
    log.create_topic("t", TopicConfig())
    fill(log, 40)
    log.close()
    again = open_log(index_interval_bytes=200)
    fill(again, 40)
    got: list[LogRecord] = []
    while len(got) < 240:
        got += again.read(TP, len(got))
    assert [r.offset for r in got] == list(range(240))
    assert again.offset_for_time(TP, 1012) == next(r.offset for r in got if r.timestamp_ms >= 1012)


@pytest.mark.parametrize("clean", [True, False])
def test_an_active_segment_of_an_unknown_format_version_is_refused_not_cut(
    open_log: OpenLog, tmp_path: Path, clean: bool
) -> None:
    log = open_log()
    log.create_topic("t", TopicConfig())
    fill(log, 4)
    log.close()
    if not clean:
        clean_shutdown_file(tmp_path / "log").unlink(missing_ok=True)
    [segment] = (tmp_path / "log" / "topics" / "t" / "0").glob("*.log")
    data = bytearray(segment.read_bytes())
    data[4] = 99  # a format version from a newer changehub (FORMAT.md: readers stop)
    segment.write_bytes(bytes(data))
    with pytest.raises(ChangehubError, match="version"):
        open_log()
    assert segment.read_bytes() == bytes(data), "the segment was changed"
