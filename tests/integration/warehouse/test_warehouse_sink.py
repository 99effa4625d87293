"""The sql sink as a warehouse on DuckDB, SQLite, PostgreSQL and MariaDB: after a mixed
workload with sink restarts and re-delivery, each table mode holds exactly what it should."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from connectors.sink.sql import SqlSink, SqlSinkConfig
from connectors.sink.sql import sink as sink_module
from connectors.testing import DeadLetters, make_context
from hub.errors import FatalError
from log.api import LogRecord
from tests.integration.source_pipeline import wait_until
from tests.integration.warehouse.workload import (
    COLUMNS,
    TP,
    expected_history,
    expected_scd2,
    expected_upsert,
    read_table,
    workload,
)

ROOT = Path(__file__).resolve().parents[3]
MODES: dict[str, dict[str, Any]] = {
    "upsert": {},
    "history": {"mode": "history"},
    "scd2": {"mode": "history", "history": {"scd2": True}},
}


class Sinks:
    """Sinks of one test, stopped at its end; ``new`` is a (re)start as the hub does it."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url, self.tmp_path = url, tmp_path
        self.made: list[SqlSink] = []

    def new(self, mode: str, dead: DeadLetters | None = None, **extra: Any
            ) -> tuple[SqlSink, int]:
        config = SqlSinkConfig(name="wh", topics=["shop.*"], url=self.url, table="{table}",
                               **MODES[mode], **extra)
        sink = SqlSink(config, make_context("wh", self.tmp_path / "data", dead))
        self.made.append(sink)
        # The hub's own commit may lag the target's: it resumes where start() says.
        return sink, sink.start({TP: 0})[TP]

    def stop_all(self) -> None:
        for sink in self.made:
            sink.stop()


@pytest.fixture
def sinks(target: str, tmp_path: Path) -> Iterator[Sinks]:
    made = Sinks(target, tmp_path)
    yield made
    made.stop_all()


def check(url: str, mode: str, events: Sequence[Any]) -> None:
    if mode == "upsert":
        assert read_table(url, "orders", COLUMNS) == sorted(expected_upsert(events), key=repr)
    elif mode == "history":
        got = read_table(url, "orders", ("_offset", "_op", "_position", "_ts", *COLUMNS))
        assert got == sorted(expected_history(events), key=repr)
    else:
        got = read_table(url, "orders",
                         ("_offset", "_valid_from", "_valid_to", "_is_current", *COLUMNS))
        assert got == sorted(expected_scd2(events), key=repr)


@pytest.mark.parametrize("mode", list(MODES))
def test_target_equals_source_after_a_mixed_workload_with_restarts_and_redelivery(
    sinks: Sinks, mode: str
) -> None:
    records, events = workload()
    sink, resume = sinks.new(mode)
    assert resume == 0
    step = 37
    for n, start in enumerate(range(0, len(records), step)):
        chunk = records[start:start + step]
        sink.write(chunk)
        if n % 3 == 2:
            # A crash before the flush: the chunk is lost with the sink, and the next one
            # resumes at the target's offsets while the hub re-delivers everything from 0.
            sink.stop()
            sink, resume = sinks.new(mode)
            assert resume == start
            sink.write(records[:start + len(chunk)])
        sink.flush()
    sink.stop()
    sink, resume = sinks.new(mode)
    assert resume == len(records)
    sink.write(records)  # all of it again: nothing changes
    sink.flush()
    check(sinks.url, mode, events)


@pytest.mark.parametrize("mode", list(MODES))
def test_a_failure_between_writing_and_committing_replays_idempotently(
    sinks: Sinks, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    records, events = workload(events=120)
    half = len(records) // 2
    sink, _ = sinks.new(mode)
    sink.write(records[:half])
    sink.flush()
    real = sink_module.store_offsets  # type: ignore[attr-defined]

    def store_then_die(*args: Any) -> None:
        real(*args)  # rows and offsets are written, the commit never comes
        raise FatalError("injected crash before commit")

    monkeypatch.setattr(sink_module, "store_offsets", store_then_die)
    # A table first seen in this flush: its CREATE TABLE must not commit the orders rows
    # (MySQL/MariaDB commit at every DDL statement).
    items = [_other_table(r) for r in records[:4]]
    sink.write(records[half:] + items)
    with pytest.raises(FatalError, match="injected crash"):
        sink.flush()
    sink.stop()
    monkeypatch.setattr(sink_module, "store_offsets", real)
    check(sinks.url, mode, [e for e in events if e.offset < half])
    sink, resume = sinks.new(mode)
    assert resume == half
    sink.write(records + items)
    sink.flush()
    check(sinks.url, mode, events)
    assert len(read_table(sinks.url, "items", ("id",))) >= 1


@pytest.mark.parametrize("mode", list(MODES))
def test_an_incompatible_type_goes_to_the_dead_letters_and_the_rest_flows(
    sinks: Sinks, mode: str
) -> None:
    records, events = workload(events=60)
    dead = DeadLetters(tolerate=True)
    sink, _ = sinks.new(mode, dead)
    sink.write(records[:30])
    sink.flush()
    # qty was an integer column; now one event carries text that no integer column can hold.
    bad = _with_qty(records[30], "a lot")
    assert bad is not None
    sink.write([bad])
    sink.write(records[31:])
    assert sink.flush() == {TP: len(records)}
    assert [(r.offset, why) for r, why in dead.records] == [
        (30, "column 'qty' holds integer values, and \"a lot\" is not one")
    ]
    check(sinks.url, mode, [e for e in events if e.offset != 30])


def test_a_value_the_database_refuses_goes_to_the_dead_letters_and_the_rest_lands(
    sinks: Sinks
) -> None:
    # The table exists with a constraint the events know nothing of; the database refuses
    # the rows breaking it only when the flush writes them.
    engine = sa.create_engine(sinks.url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, name VARCHAR(100), "
            "qty BIGINT CHECK (qty >= 0))"))
    engine.dispose()
    records, events = workload(events=60)
    # Two keys' last changes break it; the first of those keys also changed earlier in the
    # batch, and that earlier state must land.
    last = {e.key: e for e in events}
    upserts = [e for e in last.values() if e.op != "d"]
    earlier = {e.key for e in events if e.op != "d"} & {
        k for k in last if sum(e.key == k for e in events) > 1}
    bad = sorted(
        [next(e for e in upserts if e.key in earlier).offset,
         next(e for e in upserts if e.key not in earlier).offset])
    records = [_with_qty(r, -1) if r.offset in bad else r for r in records]  # type: ignore[misc]

    refusing, _ = sinks.new("upsert")
    refusing.write(records)
    with pytest.raises(FatalError, match="failed"):
        refusing.flush()  # errors.tolerance: none: the whole flush fails, nothing lands
    refusing.stop()

    dead = DeadLetters(tolerate=True)
    sink, start = sinks.new("upsert", dead, errors={"tolerance": "all"})
    assert start == 0
    sink.write(records)
    assert sink.flush() == {TP: len(records)}
    assert [r.offset for r, _ in dead.records] == bad
    assert all("the target database refused it" in why for _, why in dead.records)
    check(sinks.url, "upsert", [e for e in events if e.offset not in bad])


def _other_table(record: LogRecord) -> LogRecord:
    """``record`` as a change of table items (topic shop.public.items)."""
    assert record.value is not None
    value = orjson.loads(record.value)
    value["source"]["table"] = "items"
    return record._replace(topic="shop.public.items", value=orjson.dumps(value))


def _with_qty(record: LogRecord, qty: Any) -> LogRecord | None:
    assert record.value is not None
    value = orjson.loads(record.value)
    image = "before" if value["op"] == "d" else "after"
    value[image]["qty"] = qty
    return record._replace(value=orjson.dumps(value))


@pytest.mark.parametrize("mode", ["history", "scd2"])
def test_a_truncate_is_a_history_row_or_closes_every_current_version(
    sinks: Sinks, mode: str
) -> None:
    records, events = workload(events=40)
    truncate = records[-1]._replace(offset=len(records), key=None, value=orjson.dumps({
        "before": None, "after": None, "op": "t", "ts_ms": 1,
        "source": {"table": "orders", "lsn": 99_999, "ts_ms": 1_770_000_000_000},
    }))
    sink, _ = sinks.new(mode)
    sink.write(records[:20])
    sink.flush()
    sink.write([*records[20:], truncate])
    sink.flush()
    if mode == "history":
        got = read_table(sinks.url, "orders", ("_offset", "_op", "_position", "id"))
        assert (len(records), "t", "99999", None) in got
        assert len(got) == len(events) + 1
    else:
        got = read_table(sinks.url, "orders", ("_is_current", "_valid_to"))
        assert got and all(current is False and valid_to is not None
                           for current, valid_to in got)
        ends = read_table(sinks.url, "orders", ("_valid_to",))
        assert max(ends)[0].year == 2026  # closed at the truncate's time (2026-02-02)


def test_kill_9_between_writing_and_committing_loses_nothing_and_replays_idempotently(
    target: str, tmp_path: Path
) -> None:
    # SCD2, the mode whose writes are not idempotent by themselves (a close applied twice
    # ends the wrong version); the in-process failure test above covers every mode.
    mode, events = "scd2", 120
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CRASH_DATA_DIR": str(tmp_path / "data")}

    def child(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tests.integration.warehouse.crash_child", target, mode,
             str(events), action],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )

    died = child("die")
    assert died.returncode == -signal.SIGKILL, died.stderr[-3000:]
    records, all_events = workload(events=events)
    half = len(records) // 2
    check(target, mode, [e for e in all_events if e.offset < half])
    finished = child("finish")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.strip() == str(half)  # resumed where the target's offsets were
    check(target, mode, all_events)


def _open_elsewhere(path: Path) -> subprocess.CompletedProcess[str]:
    """Another process opening the DuckDB file (DuckDB lets one process at a time)."""
    code = f"import duckdb; duckdb.connect({str(path)!r}).close()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)


def test_duckdb_stays_open_while_catching_up_and_is_freed_when_caught_up(
    tmp_path: Path
) -> None:
    records, events = workload(events=25)
    assert 20 < len(records) < 40

    def sink_on(path: Path, flush_interval: str) -> SqlSink:
        config = SqlSinkConfig(name="wh", topics=["shop.*"], url=f"duckdb:///{path}",
                               table="{table}", max_batch_records=20,
                               flush_interval=flush_interval)
        sink = SqlSink(config, make_context("wh", tmp_path / "data"))
        sink.start({TP: 0})
        return sink

    path = tmp_path / "wh.duckdb"
    sink = sink_on(path, "10m")  # no idle timer within the test
    try:
        sink.write(records[:20])  # a full batch: the next flush follows at once
        sink.flush()
        assert _open_elsewhere(path).returncode != 0, "the file was closed after a full batch"
        sink.write(records[20:])  # not full: caught up
        assert sink.flush() == {TP: len(records)}
        assert _open_elsewhere(path).returncode == 0
        check(f"duckdb:///{path}", "upsert", events)
    finally:
        sink.stop()

    # A backlog that ends on a full batch: no flush follows (the hub flushes only with
    # records), and the idle timer (flush_interval, at least 1 s) frees the file.
    other = tmp_path / "other.duckdb"
    sink = sink_on(other, "100ms")
    try:
        sink.write(records[:20])
        sink.flush()
        wait_until(lambda: _open_elsewhere(other).returncode == 0,
                   "the idle sink to close the DuckDB file", 60)
    finally:
        sink.stop()
