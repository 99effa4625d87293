"""Fixtures of the batch loader's unit tests: an embedded log and change events in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.envelope import encode_key, event_records
from connectors.sink.batch import BatchSinkConfig
from log.api import Durability, Record, TopicConfig, TopicPartition
from log.embedded import EmbeddedLog

TOPIC = "shop.public.orders"
TP = TopicPartition(TOPIC, 0)
DAY_MS = 24 * 3600 * 1000
# 2026-01-30T22:30:00Z: 23:30 in Paris; an hour later it is the 31st in Paris.
T0 = 1_769_812_200_000


def change(op: str, id_: int, name: str | None, ts: int) -> list[Record]:
    """The record(s) of one change to orders row ``id_`` (a delete adds its tombstone)."""
    row = None if name is None else {"id": id_, "name": name}
    made = event_records(
        topic=TOPIC, key=encode_key({"id": id_}, ["id"]), op=op,  # type: ignore[arg-type]
        before=row if op == "d" else None, after=None if op == "d" else row,
        source={"name": "shop", "table": "orders"}, ts_ms=ts,
    )
    return [Record(r.key, r.value, ts) for r in made]


def config(root: Path, **extra: Any) -> BatchSinkConfig:
    keys: dict[str, Any] = {"name": "nightly", "topics": ["shop.*"], "path": root,
                            "format": "jsonl", "schedule": "0 2 * * *"}
    keys.update(extra)
    return BatchSinkConfig(**keys)


@pytest.fixture
def log_(tmp_path: Path) -> Iterator[EmbeddedLog]:
    opened = EmbeddedLog(tmp_path / "log", Durability(policy="never"), TopicConfig(),
                         background_jobs=False)
    yield opened
    opened.close()
