"""The batch sink: file layout, manifest, crash leftovers, formats, bad records."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.envelope import encode_key, event_records
from connectors.sink.batch import BatchSink, BatchSinkConfig
from connectors.sink.batch.manifest import MANIFEST
from connectors.testing import DeadLetters, make_context
from hub.errors import FatalError, RecordError
from log.api import LogRecord, TopicPartition

TOPIC = "shop.public.orders"
TP0, TP1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def records(partition: int, offsets: range, op: str = "c") -> list[LogRecord]:
    out = []
    for offset in offsets:
        rec = event_records(
            topic=TOPIC, key=encode_key({"id": offset}, ["id"]), op=op,  # type: ignore[arg-type]
            before=None, after={"id": offset, "name": f"n{offset}"},
            source={"name": "shop", "table": "orders", "lsn": offset}, ts_ms=1_700_000_000_000,
        )[0]
        out.append(LogRecord(TOPIC, partition, offset, 1_700_000_000_123, rec.key, rec.value))
    return out


@pytest.fixture
def sinks() -> Iterator[list[BatchSink]]:
    made: list[BatchSink] = []
    yield made
    for sink in made:
        sink.stop()


def make(sinks: list[BatchSink], root: Path, fmt: str = "jsonl",
         dead: DeadLetters | None = None, resume: dict[TopicPartition, int] | None = None
         ) -> tuple[BatchSink, dict[TopicPartition, int]]:
    config = BatchSinkConfig(name="nightly", topics=["shop.*"], path=root, format=fmt)  # type: ignore[arg-type]
    context = make_context("nightly", root.parent / "data", dead or DeadLetters(tolerate=False))
    sink = BatchSink(config, context)
    sinks.append(sink)
    return sink, sink.start(resume or {})


def manifest(root: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (root / MANIFEST).read_bytes().splitlines()]


def test_each_flush_writes_one_file_per_partition_named_by_offset_range(
    sinks: list[BatchSink], tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    sink, _ = make(sinks, root)
    sink.write(records(0, range(0, 3)) + records(1, range(0, 2)))
    assert sink.flush() == {TP0: 3, TP1: 2}
    sink.write(records(0, range(3, 5)))
    assert sink.flush() == {TP0: 5, TP1: 2}
    files = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*/*.jsonl"))
    assert files == [
        f"{TOPIC}/0/00000000000000000000-00000000000000000002.jsonl",
        f"{TOPIC}/0/00000000000000000003-00000000000000000004.jsonl",
        f"{TOPIC}/1/00000000000000000000-00000000000000000001.jsonl",
    ]
    entries = manifest(root)
    assert [e["file"] for e in entries] == [files[0], files[2], files[1]]
    first = entries[0]
    data = (root / first["file"]).read_bytes()
    assert first | {"written_at": None} == {
        "file": files[0], "topic": TOPIC, "partition": 0, "first_offset": 0, "last_offset": 2,
        "records": 3, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "written_at": None,
    }
    assert first["written_at"].endswith("+00:00")
    assert not list(root.rglob("*.tmp"))


def test_jsonl_keeps_each_envelope_exactly_as_in_the_log(
    sinks: list[BatchSink], tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    sink, _ = make(sinks, root)
    batch = records(0, range(2))
    tombstone = LogRecord(TOPIC, 0, 2, 5, batch[0].key, None)
    sink.write([*batch, tombstone])
    sink.flush()
    lines = (root / manifest(root)[0]["file"]).read_bytes().splitlines()
    first = orjson.loads(lines[0])
    assert first["topic"] == TOPIC and first["partition"] == 0 and first["offset"] == 0
    assert first["timestamp"] == 1_700_000_000_123
    assert first["key"] == {"id": 0}
    assert orjson.dumps(first["value"]) == batch[0].value
    assert orjson.loads(lines[2])["value"] is None


def test_parquet_has_fixed_columns_with_the_images_as_json_text(
    sinks: list[BatchSink], tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    sink, _ = make(sinks, root, "parquet")
    batch = records(0, range(2), op="u")
    sink.write([*batch, LogRecord(TOPIC, 0, 2, 5, batch[0].key, None)])
    sink.flush()
    table = pq.read_table(root / manifest(root)[0]["file"])
    assert table.schema.names == [
        "offset", "timestamp", "key", "op", "ts_ms", "before", "after", "source", "transaction"
    ]
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    rows = table.to_pylist()
    assert rows[0]["offset"] == 0
    assert rows[0]["key"] == '{"id":0}'
    assert rows[0]["op"] == "u"
    assert rows[0]["ts_ms"] == 1_700_000_000_000
    assert rows[0]["before"] is None
    assert orjson.loads(rows[0]["after"]) == {"id": 0, "name": "n0"}
    assert orjson.loads(rows[0]["source"])["lsn"] == 0
    assert rows[2]["op"] is None and rows[2]["after"] is None  # the tombstone


def test_start_prefers_the_manifest_where_it_is_ahead_of_the_hub(
    sinks: list[BatchSink], tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    sink, _ = make(sinks, root)
    sink.write(records(0, range(0, 4)) + records(1, range(0, 2)))
    sink.flush()
    sink.stop()
    _, positions = make(sinks, root, resume={TP0: 1, TP1: 7})
    assert positions == {TP0: 4, TP1: 7}


def test_a_replayed_range_is_not_written_again(sinks: list[BatchSink], tmp_path: Path) -> None:
    root = tmp_path / "exports"
    sink, _ = make(sinks, root)
    sink.write(records(0, range(0, 4)))
    sink.flush()
    sink.stop()
    again, _ = make(sinks, root, resume={TP0: 0})
    again.write(records(0, range(0, 6)))
    assert again.flush() == {TP0: 6}
    assert [(e["first_offset"], e["last_offset"]) for e in manifest(root)] == [(0, 3), (4, 5)]


def test_files_a_crash_left_outside_the_manifest_are_removed_at_start(
    sinks: list[BatchSink], tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    sink, _ = make(sinks, root)
    sink.write(records(0, range(0, 2)))
    sink.flush()
    sink.stop()
    part = root / TOPIC / "0"
    stray = part / "00000000000000000002-00000000000000000009.jsonl"  # renamed, not listed
    stray.write_bytes(b"{}\n")
    tmp = part / ".00000000000000000002-00000000000000000005.jsonl.tmp"  # never renamed
    tmp.write_bytes(b"{")
    mine = part / "notes.txt"
    mine.write_text("not ours")
    _, positions = make(sinks, root, resume={TP0: 2})
    assert positions == {TP0: 2}
    assert not stray.exists() and not tmp.exists()
    assert mine.exists()


def test_a_torn_last_manifest_line_is_cut_off_and_its_file_written_again(
    sinks: list[BatchSink], tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    sink, _ = make(sinks, root)
    sink.write(records(0, range(0, 2)))
    sink.flush()
    sink.write(records(0, range(2, 4)))
    sink.flush()
    sink.stop()
    whole = (root / MANIFEST).read_bytes()
    last_line = whole.splitlines()[-1]
    (root / MANIFEST).write_bytes(whole[: len(whole) - len(last_line) // 2])
    again, positions = make(sinks, root, resume={TP0: 0})
    assert positions == {TP0: 2}
    assert len(manifest(root)) == 1
    assert not (root / TOPIC / "0" / "00000000000000000002-00000000000000000003.jsonl").exists()
    again.write(records(0, range(2, 4)))
    again.flush()
    assert [(e["first_offset"], e["last_offset"]) for e in manifest(root)] == [(0, 1), (2, 3)]


def test_a_damaged_manifest_line_before_the_end_is_a_fatal_error(
    sinks: list[BatchSink], tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    root.mkdir()
    (root / MANIFEST).write_bytes(b"{garbage\n" + b'{"file": "x"}\n')
    with pytest.raises(FatalError, match=r"_manifest\.jsonl line 1 is not a manifest entry"):
        make(sinks, root)


def test_bad_records_fail_the_sink_unless_tolerated(
    sinks: list[BatchSink], tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    sink, _ = make(sinks, root)
    with pytest.raises(RecordError, match="value is not JSON"):
        sink.write([LogRecord(TOPIC, 0, 0, 0, b'{"id":1}', b"garbage")])

    dead = DeadLetters(tolerate=True)
    tolerant, _ = make(sinks, tmp_path / "tolerant", dead=dead)
    tolerant.write([
        LogRecord(TOPIC, 0, 0, 0, b'{"id":1}', b"garbage"),
        LogRecord(TOPIC, 0, 1, 0, b'{"id":1}', b'{"op": 5}'),
        LogRecord("../escape", 0, 0, 0, None, b"{}"),
        *records(0, range(2, 3)),
    ])
    assert tolerant.flush() == {TP0: 3, TopicPartition("../escape", 0): 1}
    assert [reason.split(" (")[0] for _, reason in dead.records] == [
        "value is not JSON",
        "envelope field op is 5, expected a string",
        "topic name '../escape' cannot be used as a directory name",
    ]
    assert [(e["first_offset"], e["records"]) for e in manifest(tmp_path / "tolerant")] == [(2, 1)]


def test_an_export_path_that_cannot_be_a_directory_is_a_fatal_error(
    sinks: list[BatchSink], tmp_path: Path
) -> None:
    blocker = tmp_path / "exports"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(FatalError, match=r"opening export directory .*exports failed"):
        make(sinks, blocker)


def test_write_after_stop_is_refused(sinks: list[BatchSink], tmp_path: Path) -> None:
    sink, _ = make(sinks, tmp_path / "exports")
    sink.stop()
    with pytest.raises(FatalError, match="not started \\(or was stopped\\)"):
        sink.write(records(0, range(1)))


def test_a_record_that_failed_the_sink_is_not_covered_by_its_offsets(
    sinks: list[BatchSink], tmp_path: Path
) -> None:
    sink, _ = make(sinks, tmp_path / "exports")
    with pytest.raises(RecordError):
        sink.write([*records(0, range(0, 2)), LogRecord(TOPIC, 0, 2, 0, None, b"garbage")])
    assert sink.flush() == {TP0: 2}
