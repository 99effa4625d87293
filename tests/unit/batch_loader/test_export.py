"""One export run: cutoff, date-partitioned files, run manifest, reruns, shapes, lost data."""

from __future__ import annotations

import csv
import errno
import io
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from connectors.sink.batch import export
from connectors.sink.batch.export import RUNS_DIR, SUCCESS, run_export
from hub.errors import FatalError, RecordError, RetriableError
from log.api import Record, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

from .conftest import DAY_MS, T0, TOPIC, TP, change, config

HOUR_MS = 3600 * 1000


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and RUNS_DIR not in p.parts}


def fill(log_: EmbeddedLog, n: int, ts: int, first_id: int = 0) -> None:
    for i in range(first_id, first_id + n):
        log_.append(TP, change("c", i, f"n{i}", ts + i))


def test_a_run_writes_files_by_topic_and_local_date_then_manifest_success_and_offsets(
    log_: EmbeddedLog, tmp_path: Path
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    fill(log_, 3, T0)  # 23:30 in Paris on the 30th
    fill(log_, 2, T0 + HOUR_MS, first_id=3)  # 00:30 in Paris on the 31st
    root = tmp_path / "out"
    result = run_export(config(root, timezone="Europe/Paris"), log_)
    run = result.run_id
    assert run is not None and result.records == 5
    assert set(files(root)) == {
        f"{TOPIC}/dt=2026-01-30/{SUCCESS}",
        f"{TOPIC}/dt=2026-01-30/{run}-0-0-2.jsonl",
        f"{TOPIC}/dt=2026-01-31/{SUCCESS}",
        f"{TOPIC}/dt=2026-01-31/{run}-0-3-4.jsonl",
    }
    manifest = orjson.loads((root / RUNS_DIR / f"{run}.json").read_bytes())
    assert [f["records"] for f in manifest["files"]] == [3, 2]
    assert manifest["partitions"] == [{"topic": TOPIC, "partition": 0, "committed": None,
                                       "from": 0, "cutoff": 5, "lost": 0}]
    assert manifest["lost"] == {}
    assert log_.committed_offsets("nightly") == {TP: 5}


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_files_are_cut_where_the_day_changes_and_at_max_file_records_within_one_read(
    log_: EmbeddedLog, tmp_path: Path, fmt: str
) -> None:
    # One append, so one block of the log's columnar read holds every record: 7 on the 30th,
    # 3 on the 31st, 2 on the 30th again (a late timestamp), at most 4 rows a file.
    log_.create_topic(TOPIC, TopicConfig())
    times = [T0 - HOUR_MS] * 7 + [T0 + HOUR_MS] * 3 + [T0 - HOUR_MS] * 2
    log_.append(TP, [r for i, ts in enumerate(times) for r in change("c", i, f"n{i}", ts)])
    root = tmp_path / "out"
    result = run_export(config(root, timezone="Europe/Paris", format=fmt,
                               max_file_records=4), log_)
    assert result.records == 12
    assert [(f.date, f.first_offset, f.last_offset, f.records) for f in result.files] == [
        ("2026-01-30", 0, 3, 4), ("2026-01-30", 4, 6, 3), ("2026-01-31", 7, 9, 3),
        ("2026-01-30", 10, 11, 2),
    ]
    if fmt == "parquet":
        offsets = [pq.read_table(root / f.file)["offset"].to_pylist() for f in result.files]
        assert offsets == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11]]


def test_utc_is_the_default_time_zone_of_the_date_directories(
    log_: EmbeddedLog, tmp_path: Path
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    fill(log_, 2, T0 + HOUR_MS)  # 23:30 UTC on the 30th
    root = tmp_path / "out"
    run_export(config(root), log_)
    assert [p.parent.name for p in root.glob(f"{TOPIC}/*/*.jsonl")] == ["dt=2026-01-30"]


def test_the_next_run_exports_only_what_came_after_the_last_cutoff(
    log_: EmbeddedLog, tmp_path: Path
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    fill(log_, 3, T0)
    root = tmp_path / "out"
    first = run_export(config(root), log_)
    fill(log_, 2, T0 + DAY_MS, first_id=3)
    second = run_export(config(root), log_)
    assert first.run_id != second.run_id
    assert [(f.first_offset, f.last_offset) for f in second.files] == [(3, 4)]
    assert log_.committed_offsets("nightly") == {TP: 5}
    nothing = run_export(config(root), log_)
    assert nothing.run_id is None and nothing.files == []


def test_until_fixes_the_cutoff_at_a_time(log_: EmbeddedLog, tmp_path: Path) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    fill(log_, 3, T0)
    fill(log_, 3, T0 + DAY_MS, first_id=3)
    root = tmp_path / "out"
    result = run_export(config(root), log_, until_ms=T0 + HOUR_MS)
    assert result.cutoff == {TP: 3} and result.records == 3
    assert log_.committed_offsets("nightly") == {TP: 3}
    again = run_export(config(root), log_, until_ms=T0 + HOUR_MS)
    assert again.run_id is None


def test_rerunning_the_same_night_gives_the_same_files_not_duplicates(
    log_: EmbeddedLog, tmp_path: Path
) -> None:
    log_.create_topic(TOPIC, TopicConfig(partitions=2))
    for p in (0, 1):
        for i in range(4):
            log_.append(TopicPartition(TOPIC, p), change("c", i, f"n{i}", T0 + i))
    root = tmp_path / "out"
    cfg = config(root, format="parquet")
    first = run_export(cfg, log_)
    before = files(root)
    # The commit was lost (a crash right after the manifest): the same night runs again.
    log_.commit_offsets("nightly", {TopicPartition(TOPIC, 0): 0, TopicPartition(TOPIC, 1): 0})
    again = run_export(cfg, log_)
    assert again.run_id == first.run_id and again.already_done
    assert files(root) == before
    assert log_.committed_offsets("nightly") == first.cutoff


def test_a_killed_runs_files_are_removed_and_the_rerun_rewrites_them_identically(
    log_: EmbeddedLog, tmp_path: Path
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    fill(log_, 5, T0)
    root = tmp_path / "out"
    cfg = config(root, format="csv")
    result = run_export(cfg, log_)
    assert result.run_id is not None
    expected = files(root)
    # What a kill before the manifest leaves: the data files and a temporary file, no manifest.
    (root / RUNS_DIR / f"{result.run_id}.json").unlink()
    for marker in root.rglob(SUCCESS):
        marker.unlink()
    (root / TOPIC / "dt=2026-01-30" / ".half.csv.tmp").write_bytes(b"offset,tim")
    stray = root / TOPIC / "dt=2026-01-29" / f"{result.run_id}-0-9-9.csv"
    stray.parent.mkdir()
    stray.write_bytes(b"x")
    log_.commit_offsets("nightly", {TP: 0})
    rerun = run_export(cfg, log_)
    assert rerun.run_id == result.run_id and not rerun.already_done
    assert {k: v for k, v in files(root).items()} == expected
    assert not stray.exists()


def test_latest_shape_is_the_state_of_every_key_at_the_cutoff(
    log_: EmbeddedLog, tmp_path: Path
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    table: dict[int, str] = {}
    ts = T0
    for op, id_, name in [("c", 1, "a"), ("c", 2, "b"), ("c", 3, "c"), ("u", 1, "a2"),
                          ("d", 2, None), ("c", 4, "d"), ("u", 3, "c2"), ("d", 4, None),
                          ("c", 2, "b again")]:
        log_.append(TP, change(op, id_, name, ts))
        ts += 1000
        if name is None:
            table.pop(id_)
        else:
            table[id_] = name
    root = tmp_path / "out"
    result = run_export(config(root, shape="latest", format="parquet"), log_)
    rows = pq.read_table(root / result.files[0].file).to_pylist()
    exported = {orjson.loads(r["after"])["id"]: orjson.loads(r["after"])["name"] for r in rows}
    assert exported == table
    assert all(r["op"] != "d" for r in rows)


def test_csv_files_hold_a_header_and_json_cells_that_read_back(
    log_: EmbeddedLog, tmp_path: Path
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    log_.append(TP, change("c", 1, 'a, "quoted" name', T0))
    root = tmp_path / "out"
    result = run_export(config(root, format="csv"), log_)
    reader = csv.DictReader(io.StringIO((root / result.files[0].file).read_text()))
    (row,) = list(reader)
    assert orjson.loads(row["after"]) == {"id": 1, "name": 'a, "quoted" name'}
    assert row["op"] == "c" and row["timestamp"] == "2026-01-30T22:30:00.000Z"


def test_records_deleted_by_retention_before_export_are_reported_as_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [T0 / 1000]
    log_ = EmbeddedLog(tmp_path / "log", default_topic_config=TopicConfig(),
                       background_jobs=False, clock=lambda: now[0])
    try:
        log_.create_topic(TOPIC, TopicConfig(segment_bytes=2000, retention_ms=DAY_MS))
        root = tmp_path / "out"
        fill(log_, 5, T0)
        run_export(config(root), log_)  # committed at 5
        fill(log_, 40, T0, first_id=5)  # old records, in several segments
        now[0] += 3 * DAY_MS / 1000
        fill(log_, 5, T0 + 3 * DAY_MS, first_id=45)
        assert log_.run_retention() > 0
        start = log_.start_offset(TP)
        assert start > 5
        result = run_export(config(root), log_)
    finally:
        log_.close()
    assert result.lost == {TP: start - 5}
    assert result.files[0].first_offset == start
    manifest = orjson.loads((root / RUNS_DIR / f"{result.run_id}.json").read_bytes())
    assert manifest["lost"] == {str(TP): start - 5}
    assert any(r.levelname == "ERROR" and "LOST" in r.getMessage() for r in caplog.records)


def test_a_latest_snapshot_is_not_written_again_when_nothing_changed(
    log_: EmbeddedLog, tmp_path: Path
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    fill(log_, 3, T0)
    root = tmp_path / "out"
    cfg = config(root, shape="latest")
    first = run_export(cfg, log_)
    before = files(root)
    assert first.records == 3
    assert run_export(cfg, log_).run_id is None
    assert files(root) == before
    fill(log_, 1, T0 + DAY_MS, first_id=3)
    second = run_export(cfg, log_)
    assert second.records == 4  # a whole snapshot: every key, not only the new one


def test_an_export_directory_that_cannot_be_made_is_a_clear_error(
    log_: EmbeddedLog, tmp_path: Path
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    fill(log_, 1, T0)
    (tmp_path / "out").write_bytes(b"")
    with pytest.raises(FatalError, match=r"exporting to .*out failed: .*check the path"):
        run_export(config(tmp_path / "out"), log_)
    assert log_.committed_offsets("nightly") == {}


def test_a_bad_record_fails_the_run_or_goes_to_the_dead_letter_topic_when_tolerated(
    log_: EmbeddedLog, tmp_path: Path
) -> None:
    log_.create_topic(TOPIC, TopicConfig())
    fill(log_, 2, T0)
    log_.append(TP, [Record(b'{"id": 9}', b"not json", T0)])
    fill(log_, 1, T0, first_id=3)
    root = tmp_path / "out"
    with pytest.raises(RecordError, match=r"value is not JSON .*errors.tolerance: all"):
        run_export(config(root), log_)
    assert log_.committed_offsets("nightly") == {}
    assert not list((root / RUNS_DIR).glob("*.json"))

    created: list[str] = []

    def ensure_topic(name: str) -> int:
        log_.create_topic(name, TopicConfig())
        created.append(name)
        return 1

    result = run_export(config(root, errors={"tolerance": "all"}), log_,
                        ensure_topic=ensure_topic)
    assert result.records == 3 and created == ["nightly.dlq"]
    (dead,) = log_.read(TopicPartition("nightly.dlq", 0), 0)
    assert dead.value == b"not json"
    assert dict(dead.headers)["changehub.source.offset"] == b"2"
    assert log_.committed_offsets("nightly") == {TP: 4}


def test_a_file_that_fails_on_the_writer_thread_fails_the_run_and_the_rerun_is_clean(
    log_: EmbeddedLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parquet files of changes are written on a worker thread: its error must fail the run
    # before any manifest or commit, and the rerun must write every file
    log_.create_topic(TOPIC, TopicConfig())
    log_.append(TP, [r for i in range(6) for r in change("c", i, f"n{i}", T0)])
    root = tmp_path / "out"
    cfg = config(root, format="parquet", max_file_records=2)
    real = export.write_durably
    calls: list[Path] = []

    def failing(base: Path, relative: Path, data: bytes) -> None:
        calls.append(relative)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(base, relative, data)

    monkeypatch.setattr(export, "write_durably", failing)
    with pytest.raises(RetriableError, match="No space left"):
        run_export(cfg, log_)
    assert not list((root / RUNS_DIR).glob("*.json"))
    assert log_.committed_offsets("nightly") == {}
    monkeypatch.setattr(export, "write_durably", real)
    result = run_export(cfg, log_)
    assert [f.records for f in result.files] == [2, 2, 2]
    assert sorted(p.name for p in root.rglob("*.parquet")) == sorted(
        Path(f.file).name for f in result.files)
    assert log_.committed_offsets("nightly") == {TP: 6}
