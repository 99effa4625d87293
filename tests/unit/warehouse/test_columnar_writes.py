"""The sql sink's columnar writes (connectors/sink/sql/columnar.py) against its per-record
path: the same records into two targets, one sink allowed the columnar decode and one not,
must leave the same tables; and every case the module doc names goes the per-record way."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from connectors.sink.sql import SqlSink, SqlSinkConfig
from connectors.sink.sql import sink as sink_module
from connectors.sink.sql.columnar import Decoder
from connectors.sink.sql.evolution import TableShape
from connectors.sqldb import describe_table
from connectors.testing import DeadLetters, make_context
from log.api import LogRecord, TopicPartition

TOPIC = "shop.public.orders"
SOURCE = {"name": "shop", "db": "shop", "schema": "public", "table": "orders"}
N = 100  # records per write: above the columnar path's minimum


def event(op: str, after: dict[str, Any] | None, *, source: dict[str, Any] | None = None,
          before: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"before": before, "after": after, "op": op, "ts_ms": 1,
                         "source": source or SOURCE})


def records(pairs: list[tuple[bytes | None, bytes | None]], first: int = 0) -> list[LogRecord]:
    return [LogRecord(TOPIC, 0, first + n, 1, k, v) for n, (k, v) in enumerate(pairs)]


def key(i: Any) -> bytes:
    return orjson.dumps({"id": i})


def row(i: int, gen: int = 0) -> dict[str, Any]:
    return {"id": i, "name": f"item {i} \"q\" \\ é ✓ \n{gen}", "qty": -i * 3 + gen,
            "price": i / 7 + gen, "ok": i % 2 == 0, "note": None if i % 3 else f"n{i}"}


def upserts(start: int, count: int, gen: int = 0, op: str = "c") -> list[tuple[bytes, bytes]]:
    return [(key(i), event(op, row(i, gen))) for i in range(start, start + count)]


# -- the decoder on its own ----------------------------------------------------------------

def test_a_write_of_upserts_decodes_to_the_values_the_per_record_fit_gives() -> None:
    recs = records(upserts(0, N) + upserts(0, 10, gen=1, op="u"))
    decoder = Decoder()
    try:
        decoded = decoder.decode(recs, "{table}", {})
    finally:
        decoder.close()
    assert decoded is not None
    assert decoded.table == (None, "orders") and decoded.key == ("id",)
    assert decoded.new == {"id": "integer", "name": "text", "qty": "integer", "price": "float",
                           "ok": "boolean", "note": "text"}
    shape = TableShape("orders", ("id",))
    expected = [shape.fit({**orjson.loads(r.value or b"")["after"], **orjson.loads(r.key or b"")})
                for r in recs]
    got = decoded.rows.sort_by("_seq").drop_columns(["_seq"]).to_pylist()
    assert got == expected
    assert [type(v) for v in got[1].values()] == [type(v) for v in expected[1].values()]


def _bad(i: int) -> tuple[bytes | None, bytes | None]:
    return key(i), event("u", row(i))


# Each case: records that differ from a plain write in one way the columnar result could get
# wrong; the decoder must leave the write to the per-record path (None).
FALLBACKS: dict[str, tuple[bytes | None, bytes | None]] = {
    "a column left out (TOAST)": (key(5), event("u", {k: v for k, v in row(5).items()
                                                      if k != "name"})),
    "a column more": (key(5), event("u", {**row(5), "extra": 1})),
    "a delete": (key(5), event("d", None, before=row(5))),
    "a truncate": (None, event("t", None)),
    "schema-wrapped value": (key(5), orjson.dumps({"schema": {"type": "struct"},
                                                   "payload": orjson.loads(event("c", row(5)))})),
    "schema-wrapped key": (orjson.dumps({"schema": {"type": "struct"}, "payload": {"id": 5}}),
                           event("c", row(5))),
    "NaN": (key(5), event("u", row(5)).replace(b'"qty":-15', b'"qty":NaN')),
    "Infinity": (key(5), event("u", row(5)).replace(b'"qty":-15', b'"qty":-Infinity')),
    "1e400": (key(5), event("u", row(5)).replace(b'"qty":-15', b'"qty":1e400')),
    "trailing comma": (key(5), event("u", row(5)).replace(b'"ts_ms":1,', b'"ts_ms":1,}')[:-1]),
    "not JSON": (key(5), b"{nope"),
    "not UTF-8": (key(5), event("u", row(5)).replace(b"item", b"\xff")),
    "a string in an integer column": (key(5), event("u", {**row(5), "qty": "7"})),
    "a float in an integer column": (key(5), event("u", {**row(5), "qty": 7.0})),
    "an integer in a text column": (key(5), event("u", {**row(5), "name": 7})),
    "a bool in an integer column": (key(5), event("u", {**row(5), "qty": True})),
    "an object in a text column": (key(5), event("u", {**row(5), "name": {"a": 1}})),
    "an integer beyond 64 bits": (key(5), event("u", {**row(5), "qty": 2**64 - 1})),
    "a null key column": (orjson.dumps({"id": None}), event("u", row(5))),
    "another key column": (orjson.dumps({"id": 5, "x": 1}), event("u", row(5))),
    "a duplicated column": (key(5), event("u", row(5)).replace(b'"qty":-15',
                                                               b'"qty":-15,"qty":3')),
    "another table": (key(5), event("u", row(5), source={**SOURCE, "table": "other"})),
    "an op that is no string": (key(5), event("u", row(5)).replace(b'"op":"u"', b'"op":1')),
    "a tombstone": (key(5), None),
    "a missing key": (None, event("u", row(5))),
}


@pytest.fixture(scope="module")
def decoder() -> Iterator[Decoder]:
    d = Decoder()
    yield d
    d.close()


@pytest.fixture(scope="module")
def shapes(decoder: Decoder) -> dict[Any, TableShape]:
    """The table as the plain write plans it; the plain write is taken, so each fallback
    below is caused by its one odd record."""
    good = records(upserts(0, N))
    first = decoder.decode(good, "{table}", {})
    assert first is not None
    known = {first.table: TableShape("orders", first.key, dict(first.new))}
    assert decoder.decode(good, "{table}", known) is not None
    return known


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_a_write_the_columnar_result_could_get_wrong_is_left_to_the_per_record_path(
    case: str, decoder: Decoder, shapes: dict[Any, TableShape]
) -> None:
    pairs: list[tuple[bytes | None, bytes | None]] = list(upserts(0, N))
    pairs[N // 2] = FALLBACKS[case]
    assert decoder.decode(records(pairs), "{table}", shapes) is None


def test_floats_go_columnar_exactly(decoder: Decoder) -> None:
    values = [0.1, 1e-7, 5e-324, 1.2345e-300, 1.7976931348623157e99, -0.0, 2**53 + 1,
              123456789012345678, 1 / 3, 1e22, 3]
    pairs = [(key(i), event("c", {"id": i, "x": values[i % len(values)]})) for i in range(N)]
    shapes = {(None, "orders"): TableShape("orders", ("id",), {"id": "integer", "x": "float"})}
    decoded = decoder.decode(records(pairs), "{table}", shapes)
    assert decoded is not None
    got = decoded.rows.sort_by("_seq").column("x").to_pylist()
    want = [float(values[i % len(values)]) for i in range(N)]
    assert got == want and [math.copysign(1, g) for g in got] == [math.copysign(1, w)
                                                                   for w in want]


# -- the sink: columnar and per record leave the same tables --------------------------------

@pytest.fixture(params=["sqlite", "duckdb"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _sink(url: str, tmp_path: Path, name: str, dead: DeadLetters) -> SqlSink:
    config = SqlSinkConfig(name="wh", topics=["shop.*"], url=url, table="{table}",
                           errors={"tolerance": "all"})  # type: ignore[arg-type]
    sink = SqlSink(config, make_context("wh", tmp_path / name, dead))
    sink.start({TopicPartition(TOPIC, 0): 0})
    return sink


def _table(url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            described = describe_table(conn, None, "orders")
            assert described is not None
            order = ", ".join(f'"{c}"' for c in sorted(described.columns))
            return [tuple(r) for r in conn.execute(sa.text(
                f'SELECT {order} FROM "orders" ORDER BY "id"')).all()]
    finally:
        engine.dispose()


def test_the_columnar_and_per_record_paths_leave_the_same_tables(
    dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # flushes of several writes each: columnar writes, writes that fall back (a TOASTed
    # column, a delete, a bad value for the dead letters), columnar after per record in one
    # flush, a column added, a table created beforehand with its own column kinds
    flushes: list[list[list[tuple[bytes | None, bytes | None]]]] = [
        [upserts(0, N), upserts(N, N)],
        [upserts(0, N, gen=1, op="u"),
         [*upserts(N, N - 1, gen=2, op="u"),
          (key(3), event("u", {k: v for k, v in row(3, 9).items() if k != "name"}))],
         upserts(N // 2, N, gen=3, op="u")],
        [[*upserts(0, N - 1, gen=4, op="u"), (key(2 * N - 1), event("d", None))],
         [(key(i), event("u", {**row(i, 5), "added": i * 1.5})) for i in range(N)]],
        [[*upserts(0, N - 1, gen=6, op="u"), (key(8), event("u", {**row(8), "qty": "x"}))],
         upserts(10, N, gen=7, op="r")],
    ]
    dead: dict[str, DeadLetters] = {}
    taken: dict[str, int] = {"columnar": 0, "per-record": 0}
    for path in ("columnar", "per-record"):
        url = f"{dialect}:///{tmp_path / path}.db"
        engine = sa.create_engine(url)
        with engine.begin() as conn:  # the same existing column kinds in both targets
            conn.execute(sa.text('CREATE TABLE orders (id BIGINT PRIMARY KEY, qty DOUBLE '
                                 'PRECISION, "ok" BOOLEAN)'))
        engine.dispose()
        monkeypatch.setattr(sink_module, "_COLUMNAR_MIN", 64 if path == "columnar" else 10**9)
        dead[path] = DeadLetters(True)
        sink = _sink(url, tmp_path, path, dead[path])
        decode = sink._columnar.decode

        def counting(*args: Any, _path: str = path, _decode: Any = decode) -> Any:
            out = _decode(*args)
            taken[_path] += out is not None
            return out

        sink._columnar.decode = counting  # type: ignore[method-assign]
        offset = 0
        try:
            for writes in flushes:
                for pairs in writes:
                    sink.write(records(pairs, offset))
                    offset += len(pairs)
                sink.flush()
        finally:
            sink.stop()
    assert taken["per-record"] == 0 and taken["columnar"] >= 5  # both paths really ran
    columnar = _table(f"{dialect}:///{tmp_path / 'columnar'}.db")
    assert columnar == _table(f"{dialect}:///{tmp_path / 'per-record'}.db")
    assert len(columnar) == 2 * N - 1  # the last key deleted
    assert [(r.offset, why) for r, why in dead["columnar"].records] == [
        (r.offset, why) for r, why in dead["per-record"].records]
    assert len(dead["columnar"].records) == 1


def test_a_columnar_write_skips_the_records_the_target_already_holds(
    dialect: str, tmp_path: Path
) -> None:
    url = f"{dialect}:///{tmp_path / 'target'}.db"
    sink = _sink(url, tmp_path, "replay", DeadLetters(False))
    try:
        sink.write(records(upserts(0, N)))
        sink.flush()
        # a replay from an older hub commit: offsets N/2 .. N-1 again (with other contents,
        # which must not land), then new ones
        replay = records(upserts(N // 2, N, gen=1, op="u"), first=N // 2)
        assert sink._columnar.decode(replay[N // 2:], "{table}", sink._shapes) is not None
        sink.write(replay)
        assert sink.flush() == {TopicPartition(TOPIC, 0): N + N // 2}
    finally:
        sink.stop()
    got = {r[0]: r[1] for r in _table(url)}  # id -> name (columns sorted: id, name, …)
    assert len(got) == N + N // 2
    assert got[N // 2] == row(N // 2)["name"] and got[N] == row(N, 1)["name"]


@pytest.mark.parametrize("case", ["a column more", "a duplicated column", "another key column"])
def test_the_first_record_itself_is_checked_too(
    case: str, decoder: Decoder, shapes: dict[Any, TableShape]
) -> None:
    # the first record sets the columns the others are measured against
    pairs: list[tuple[bytes | None, bytes | None]] = list(upserts(0, N))
    pairs[0] = FALLBACKS[case]
    assert decoder.decode(records(pairs), "{table}", shapes) is None


def test_writes_of_two_tables_with_the_same_columns_each_decode_as_their_own(
    decoder: Decoder,
) -> None:
    # one decoder keeps a decoding query per table (its source fields are in the query): the
    # second table must not run the first one's, and a write mixing both is left per record
    other = {**SOURCE, "table": "returns"}
    orders = upserts(0, N)
    returns = [(key(i), event("c", row(i), source=other)) for i in range(N)]
    for _ in range(2):
        for pairs, table in ((orders, "orders"), (returns, "returns")):
            decoded = decoder.decode(records(pairs), "{table}", {})
            assert decoded is not None and decoded.table == (None, table)
            assert decoded.rows.num_rows == N
    assert decoder.decode(records(orders[:N // 2] + returns[N // 2:]), "{table}", {}) is None
