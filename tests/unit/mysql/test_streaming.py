"""``ChangeStream`` on hand-built binlog events: transaction boundaries, big transactions
split with ``skip``, a transaction sent twice, a reconnect in the middle of one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pymysqlreplication.event import MariadbGtidEvent, XidEvent
from pymysqlreplication.row_event import WriteRowsEvent

from connectors.envelope import decode_value
from connectors.source.mysql.checkpoint import Checkpoint, Position
from connectors.source.mysql.schema import TableSchema
from connectors.source.mysql.streaming import ChangeStream, Chunk

COLUMNS = [
    SimpleNamespace(name="id", type=3, character_set_name=None, set_values=None),
    SimpleNamespace(name="name", type=15, character_set_name="utf8mb4", set_values=None),
]


class FakeCatalog:
    def table(self, db: str, table: str) -> TableSchema | None:
        return None

    def forget(self, db: str | None) -> None:
        pass


def packet(pos: int) -> Any:
    return SimpleNamespace(log_pos=pos, server_id=1)


def gtid(seq: int, pos: int) -> MariadbGtidEvent:
    e = object.__new__(MariadbGtidEvent)
    e.domain_id, e.server_id, e.gtid_seq_no, e.flags = 0, 1, seq, 0
    e.gtid = f"0-1-{seq}"
    e.packet = packet(pos)
    return e


def rows(ids: range, pos: int) -> WriteRowsEvent:
    e = object.__new__(WriteRowsEvent)
    e.table_id, e.schema, e.table = 7, "shop", "t"
    e.columns, e.primary_key, e.timestamp = COLUMNS, "id", 1700000000
    e.packet = packet(pos)
    e._RowsEvent__rows = [{"values": {"id": i, "name": f"n{i}"}, "none_sources": {}} for i in ids]
    return e


def xid(pos: int) -> XidEvent:
    e = object.__new__(XidEvent)
    e.packet = packet(pos)
    return e


def stream(start: Checkpoint | None = None, max_events: int = 1000) -> ChangeStream:
    return ChangeStream(
        source_name="s",
        start=start or Checkpoint(Position("0-1-10", "mysql-bin.000001", 100)),
        catalog=FakeCatalog(),  # type: ignore[arg-type]
        captures=lambda db, table: db == "shop",
        max_events=max_events,
        clock_ms=lambda: 5,
        fast_decoder=False,  # hand-built events have no bytes
    )


def feed(s: ChangeStream, events: list[Any]) -> list[Chunk]:
    return [c for c in (s.handle(e) for e in events) if c is not None]


def ids(chunks: list[Chunk]) -> list[int]:
    out = []
    for c in chunks:
        for r in c.records:
            value = decode_value(r.value)
            assert value is not None
            out.append(value["after"]["id"])
    return out


def test_a_transaction_is_one_chunk_ending_at_its_xid_with_the_new_gtid_state() -> None:
    s = stream()
    (chunk,) = feed(s, [gtid(11, 150), rows(range(1, 4), 200), xid(230)])
    assert ids([chunk]) == [1, 2, 3]
    assert chunk.checkpoint.position == Position("0-1-11", "mysql-bin.000001", 230)
    assert chunk.checkpoint.skip == 0


def test_a_big_transaction_is_split_and_a_resume_skips_what_is_in_the_log() -> None:
    s = stream(max_events=4)
    events = [gtid(11, 150), rows(range(1, 4), 200), rows(range(4, 7), 300), xid(330)]
    first = feed(s, events[:3])
    assert ids(first) == [1, 2, 3, 4, 5, 6]
    cp = first[-1].checkpoint
    assert (cp.position.gtid, cp.skip, cp.skip_tx) == ("0-1-10", 6, "0-1-11")
    resumed = stream(cp, max_events=4)
    assert ids(feed(resumed, events)) == []
    more = [gtid(11, 150), rows(range(1, 4), 200), rows(range(4, 8), 300), xid(330)]
    assert ids(feed(stream(cp), more)) == [7]


def test_a_transaction_already_in_the_state_is_dropped() -> None:
    s = stream()
    assert feed(s, [gtid(9, 50), rows(range(1, 3), 60), xid(70)]) == []
    assert s.position.gtid == "0-1-10"


def test_a_reconnect_mid_transaction_leaves_out_the_rows_seen_before() -> None:
    s = stream()
    feed(s, [gtid(11, 150), rows(range(1, 4), 200)])
    s.rewind()
    chunks = feed(s, [gtid(11, 150), rows(range(1, 4), 200), rows(range(4, 6), 300), xid(330)])
    assert ids(chunks) == [1, 2, 3, 4, 5]


def test_a_skip_for_a_transaction_that_never_comes_back_is_forgotten() -> None:
    cp = Checkpoint(Position("0-1-10", "f", 100), skip=2, skip_tx="0-1-11")
    chunks = feed(stream(cp), [gtid(12, 150), rows(range(1, 4), 200), xid(230)])
    assert ids(chunks) == [1, 2, 3]


def test_tables_not_captured_give_no_records_but_move_the_position() -> None:
    s = stream()
    other = rows(range(1, 3), 200)
    other.schema = "elsewhere"
    assert feed(s, [gtid(11, 150), other, xid(230)]) == []
    assert s.position == Position("0-1-11", "mysql-bin.000001", 230)
    assert s.checkpoint().position == s.position
