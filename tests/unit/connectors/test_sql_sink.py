"""The sql sink against real SQLite and DuckDB files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.envelope import encode_key, event_records
from connectors.sink.sql import SqlSink, SqlSinkConfig
from connectors.sink.sql.evolution import kind_of_type
from connectors.sqldb import describe_table
from connectors.testing import DeadLetters, make_context
from hub.errors import FatalError, RecordError, RetriableError, SchemaError
from log.api import LogRecord, TopicPartition

TOPIC = "shop.public.orders"
TP = TopicPartition(TOPIC, 0)
SOURCE = {"name": "shop", "db": "shop", "schema": "public", "table": "orders"}


class Stream:
    """Records of one partition, with offsets counted up as they are made."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self, op: str, key: Any, after: dict[str, Any] | None = None) -> list[LogRecord]:
        out = []
        for rec in event_records(
            topic=TOPIC, key=encode_key({"id": key}, ["id"]) if key is not None else None,
            op=op, before=None, after=after, source=SOURCE, ts_ms=1,  # type: ignore[arg-type]
        ):
            out.append(LogRecord(TOPIC, 0, self.offset, 1, rec.key, rec.value))
            self.offset += 1
        return out

    def raw(self, key: bytes | None, value: bytes | None) -> LogRecord:
        self.offset += 1
        return LogRecord(TOPIC, 0, self.offset - 1, 1, key, value)


@pytest.fixture(params=["sqlite", "duckdb"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    suffix = "db" if request.param == "sqlite" else "duckdb"
    return f"{request.param}:///{tmp_path / f'target.{suffix}'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'target.db'}"


@pytest.fixture
def sinks() -> Iterator[list[SqlSink]]:
    made: list[SqlSink] = []
    yield made
    for sink in made:
        sink.stop()


def make(sinks: list[SqlSink], url: str, tmp_path: Path, dead: DeadLetters | None = None,
         **keys: Any) -> SqlSink:
    config = SqlSinkConfig(name="wh", topics=["shop.*"], url=url, table="{table}", **keys)
    sink = SqlSink(config, make_context("wh", tmp_path / "data", dead or DeadLetters(False)))
    sinks.append(sink)
    sink.start({})
    return sink


def rows(url: str, table: str = "orders") -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(f'SELECT * FROM "{table}" ORDER BY 1')).all())
    finally:
        engine.dispose()


def column_kinds(url: str, table: str = "orders") -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            described = describe_table(conn, None, table)
            assert described is not None
            return {c: kind_of_type(t) for c, t in described.columns.items()}
    finally:
        engine.dispose()


def test_a_flush_runs_one_statement_per_kind_for_many_rows(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    s = Stream()
    sink = make(sinks, url, tmp_path)
    sink.write([r for i in range(300) for r in s("c", i, {"id": i, "v": f"x{i}"})])
    sink.flush()
    statements: list[tuple[str, bool]] = []

    def count(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
              executemany: bool) -> None:
        statements.append((statement.split(maxsplit=1)[0].upper(), executemany))

    batch = [r for i in range(300) for r in s("u", i, {"id": i, "v": f"y{i}"})]
    batch += [r for i in range(0, 300, 3) for r in s("d", i)]
    sa.event.listen(Engine, "before_cursor_execute", count)
    try:
        sink.write(batch)
        sink.flush()
    finally:
        sa.event.remove(Engine, "before_cursor_execute", count)
    writes = [s for s in statements if s[0] in ("INSERT", "MERGE", "DELETE", "UPDATE")]
    # rows: one DELETE of the 100 keys and one upsert of the 200 others (INSERT … ON
    # CONFLICT, or MERGE on DuckDB); then the offsets
    assert sum(1 for kind, _ in writes if kind == "DELETE") == 1
    assert sum(1 for kind, _ in writes if kind in ("INSERT", "MERGE")) == 2
    assert len(rows(url)) == 200
    assert rows(url)[0] == (1, "y1")


def test_many_changes_of_one_key_in_a_batch_write_its_last_state(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    s = Stream()
    sink = make(sinks, url, tmp_path)
    batch = s("c", 1, {"id": 1, "v": "a"}) + s("u", 1, {"id": 1, "v": "b"}) + s("d", 1)
    batch += s("c", 1, {"id": 1, "v": "c"}) + s("c", 2, {"id": 2, "v": "x"}) + s("d", 2)
    sink.write(batch)
    assert sink.flush() == {TP: s.offset}
    assert rows(url) == [(1, "c")]


def test_a_truncate_empties_the_table_and_later_changes_apply(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    s = Stream()
    sink = make(sinks, url, tmp_path)
    sink.write(s("c", 1, {"id": 1, "v": "a"}) + s("c", 2, {"id": 2, "v": "b"}))
    sink.flush()
    sink.write(s("c", 3, {"id": 3, "v": "c"}) + s("t", None) + s("c", 4, {"id": 4, "v": "d"}))
    sink.flush()
    assert rows(url) == [(4, "d")]
    sink.write(s("t", None))
    sink.flush()
    assert rows(url) == []


def test_tables_are_created_from_the_events_and_widened_as_columns_appear(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    s = Stream()
    sink = make(sinks, url, tmp_path)
    sink.write(s("c", 1, {"id": 1, "name": "a", "empty": None}))
    sink.flush()
    assert column_kinds(url) == {"id": "integer", "name": "text"}
    sink.write(s("u", 1, {"id": 1, "name": "a", "price": 2.5, "ok": True, "doc": {"k": [1]},
                          "empty": None}))
    sink.write(s("c", 2, {"id": 2, "name": "b", "empty": 7}))
    sink.flush()
    assert column_kinds(url) == {
        "id": "integer", "name": "text", "price": "float", "ok": "boolean", "doc": "text",
        "empty": "integer",
    }
    assert rows(url) == [(1, "a", 2.5, True, '{"k":[1]}', None), (2, "b", None, None, None, 7)]


def test_offsets_are_stored_in_the_target_and_returned_by_start(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    s = Stream()
    sink = make(sinks, url, tmp_path)
    sink.write(s("c", 1, {"id": 1}) + s("c", 2, {"id": 2}))
    sink.flush()
    assert rows(url, "_changehub_offsets") == [("wh", TOPIC, 0, 2)]
    sink.stop()
    again = SqlSink(
        SqlSinkConfig(name="wh", topics=["shop.*"], url=url, table="{table}"),
        make_context("wh", tmp_path / "data"),
    )
    sinks.append(again)
    other = TopicPartition("shop.public.other", 0)
    assert again.start({TP: 0, other: 5}) == {TP: 2, other: 5}


def test_a_failed_flush_writes_neither_rows_nor_offsets(
    sqlite_url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE orders (id BIGINT PRIMARY KEY, qty BIGINT CHECK (qty >= 0))")
        )
    engine.dispose()
    s = Stream()
    sink = make(sinks, sqlite_url, tmp_path)
    sink.write(s("c", 1, {"id": 1, "qty": 1}))
    sink.flush()
    sink.write(s("c", 2, {"id": 2, "qty": 5}) + s("c", 3, {"id": 3, "qty": -1}))
    with pytest.raises(FatalError, match=r"writing a batch for sink 'wh' on sqlite.* failed"):
        sink.flush()
    assert rows(sqlite_url) == [(1, 1)]
    assert rows(sqlite_url, "_changehub_offsets") == [("wh", TOPIC, 0, 1)]


def test_a_record_that_is_not_an_event_fails_the_sink_by_default(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    s = Stream()
    sink = make(sinks, url, tmp_path)
    with pytest.raises(RecordError, match=r"shop.public.orders\[0\]@0: value is not JSON"):
        sink.write([s.raw(b'{"id":1}', b"garbage")])


def test_bad_records_go_to_the_dead_letters_when_tolerated(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    s = Stream()
    dead = DeadLetters(tolerate=True)
    sink = make(sinks, url, tmp_path, dead)
    sink.write(s("c", 1, {"id": 1, "qty": 1}))
    sink.flush()
    sink.write([
        s.raw(b'{"id":2}', b"garbage"),
        *s("c", 3, {"id": 3, "qty": "many"}),
        *s("c", 4, {"id": 4, "qty": 4}),
    ])
    assert sink.flush() == {TP: 4}
    assert [(r.offset, reason.split(" (")[0]) for r, reason in dead.records] == [
        (1, "value is not JSON"), (2, "column 'qty' holds integer values, and \"many\" is not one")
    ]
    assert rows(url) == [(1, 1), (4, 4)]


def test_tombstones_change_nothing_but_move_the_offsets(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    s = Stream()
    sink = make(sinks, url, tmp_path)
    sink.write(s("c", 1, {"id": 1}))
    sink.flush()
    sink.write([s.raw(b'{"id":1}', None)])
    assert sink.flush() == {TP: 2}
    assert rows(url) == [(1,)]


def test_a_table_without_primary_key_is_written_by_delete_and_insert(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (id BIGINT, v TEXT)"))
    engine.dispose()
    s = Stream()
    sink = make(sinks, url, tmp_path)
    sink.write(s("c", 1, {"id": 1, "v": "a"}) + s("c", 2, {"id": 2, "v": "b"}))
    sink.flush()
    sink.write(s("u", 1, {"id": 1, "v": "a2"}) + s("d", 2))
    sink.flush()
    assert rows(url) == [(1, "a2")]


def test_a_table_made_beforehand_keeps_its_column_types(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (id BIGINT PRIMARY KEY, shipped_at TIMESTAMP)"))
    engine.dispose()
    s = Stream()
    sink = make(sinks, url, tmp_path)
    sink.write(s("c", 1, {"id": 1, "shipped_at": "2026-01-31T02:00:00.250000"}))
    sink.flush()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        table = sa.Table("orders", sa.MetaData(), sa.Column("id", sa.BigInteger),
                         sa.Column("shipped_at", sa.DateTime))
        assert conn.execute(sa.select(table)).all() == [(1, datetime(2026, 1, 31, 2, 0, 0, 250000))]
    engine.dispose()


def test_a_table_with_another_primary_key_is_a_schema_error(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (code TEXT PRIMARY KEY, id BIGINT)"))
    engine.dispose()
    s = Stream()
    sink = make(sinks, url, tmp_path)
    with pytest.raises(SchemaError, match=r"table 'orders' has primary key \(code\)"):
        sink.write(s("c", 1, {"id": 1}))


def test_flush_after_stop_is_refused(url: str, sinks: list[SqlSink], tmp_path: Path) -> None:
    s = Stream()
    sink = make(sinks, url, tmp_path)
    sink.write(s("c", 1, {"id": 1}))
    sink.stop()
    with pytest.raises(FatalError, match="was stopped"):
        sink.flush()


def test_another_process_can_open_the_duckdb_file_between_flushes(
    sinks: list[SqlSink], tmp_path: Path
) -> None:
    path = tmp_path / "warehouse.duckdb"
    s = Stream()
    sink = make(sinks, f"duckdb:///{path}", tmp_path)
    sink.write(s("c", 1, {"id": 1}))
    sink.flush()
    count = (
        f"import duckdb; db = duckdb.connect({str(path)!r}); "
        "print(db.execute('SELECT count(*) FROM orders').fetchone()[0])"
    )
    reader = subprocess.run(
        [sys.executable, "-c", count], capture_output=True, text=True, timeout=60, check=False
    )
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.strip() == "1"
    sink.write(s("c", 2, {"id": 2}))
    sink.flush()


def test_a_flush_that_failed_on_a_lock_succeeds_when_retried(
    sinks: list[SqlSink], tmp_path: Path
) -> None:
    path = tmp_path / "target.db"
    url = f"sqlite:///{path}?timeout=0.1"  # sqlite3's busy timeout, in seconds
    s = Stream()
    sink = make(sinks, url, tmp_path)
    sink.write(s("c", 1, {"id": 1, "v": "a"}) + s("c", 2, {"id": 2, "v": "b"}))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RetriableError, match="database is locked"):
            sink.flush()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert sink.flush() == {TP: 2}
    assert rows(url) == [(1, "a"), (2, "b")]


def test_a_record_that_failed_the_sink_is_not_covered_by_its_offsets(
    url: str, sinks: list[SqlSink], tmp_path: Path
) -> None:
    s = Stream()
    sink = make(sinks, url, tmp_path)
    good = s("c", 1, {"id": 1})
    with pytest.raises(RecordError):
        sink.write([*good, s.raw(b'{"id":2}', b"garbage")])
    assert sink.flush() == {TP: 1}
