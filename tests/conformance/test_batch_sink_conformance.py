"""The sink conformance suite on the batch sink, in both formats."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from connectors.sink.batch import BatchSink, BatchSinkConfig
from connectors.sink.batch.manifest import MANIFEST
from connectors.testing import SinkConformance, SinkHarness
from log.api import LogRecord

Row = tuple[str, int, int, str | None, str | None]  # topic, partition, offset, key, op


class BatchSinkHarness(SinkHarness):
    sink_class = BatchSink

    def __init__(self, root: Path, format: str) -> None:
        self.root = root
        self.format = format

    def config(self, name: str) -> BatchSinkConfig:
        return BatchSinkConfig(
            name=name, topics=["conformance.*"], path=self.root, format=self.format  # type: ignore[arg-type]
        )

    def state(self) -> list[Row]:
        """Every exported record, checked against the manifest (names, counts, hashes)."""
        rows: list[Row] = []
        manifest = self.root / MANIFEST
        if not manifest.exists():
            return rows
        listed = set()
        for line in manifest.read_bytes().splitlines():
            entry = orjson.loads(line)
            path = self.root / entry["file"]
            data = path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert len(data) == entry["bytes"]
            file_rows = self._read(path, entry["topic"], entry["partition"])
            assert len(file_rows) == entry["records"]
            assert (file_rows[0][2], file_rows[-1][2]) == (
                entry["first_offset"], entry["last_offset"]
            )
            rows += file_rows
            listed.add(path)
        on_disk = {p for p in self.root.glob("*/*/*") if p.is_file()}
        assert on_disk == listed, f"files not in the manifest: {on_disk - listed}"
        return sorted(rows)

    def _read(self, path: Path, topic: str, partition: int) -> list[Row]:
        if self.format == "jsonl":
            out = []
            for line in path.read_bytes().splitlines():
                r = orjson.loads(line)
                key = orjson.dumps(r["key"]).decode() if r["key"] is not None else None
                op = r["value"]["op"] if r["value"] is not None else None
                out.append((r["topic"], r["partition"], r["offset"], key, op))
            return out
        table = pq.read_table(path)
        return [
            (topic, partition, r["offset"], r["key"], r["op"]) for r in table.to_pylist()
        ]

    def expected(self, records: Sequence[LogRecord]) -> list[Row]:
        out = []
        for r in records:
            value: Any = orjson.loads(r.value) if r.value is not None else None
            key = r.key.decode() if r.key is not None else None
            out.append((r.topic, r.partition, r.offset, key, value["op"] if value else None))
        return sorted(out)


class TestBatchSinkConformance(SinkConformance):
    @pytest.fixture(params=["jsonl", "parquet"])
    def sink_harness(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> Iterator[BatchSinkHarness]:
        yield BatchSinkHarness(tmp_path / "exports", request.param)
