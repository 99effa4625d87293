from __future__ import annotations

import struct
from typing import Any

import orjson
import pytest

from connectors.api import SourceRecord
from connectors.envelope import event_records
from connectors.source.postgres.checkpoint import Checkpoint
from connectors.source.postgres.pgoutput import UNCHANGED, DecodeError, Message, Relation
from connectors.source.postgres.schema import TableSchema
from connectors.source.postgres.streaming import ChangeStream
from connectors.source.postgres.types import TypeMap
from hub.errors import SchemaError
from tests.unit.postgres import wire

OID = 16400
TS = 765_000_000_000_000  # µs since 2000-01-01
TS_MS = 946_684_800_000 + TS // 1000
NOW = 1_800_000_000_000
COLUMNS = [(True, "id", 23), (False, "name", 25), (False, "at", 1184), (False, "doc", 3802)]


def xlog(payload: bytes, lsn: int = 0x100) -> bytes:
    """An XLogData message around a pgoutput payload."""
    return b"w" + struct.pack(">QQq", lsn, lsn, 0) + payload


class Filler:
    """A TOAST filler that records its calls and fills from a fixed image."""

    def __init__(self, image: dict[str, Any] | None = None) -> None:
        self.tracked: set[str] = set()
        self.calls: list[tuple[bytes | None, dict[str, Any]]] = []
        self.notes: list[tuple[str, bytes | None, bytes | None]] = []
        self.image = image

    def __call__(
        self, table: TableSchema, key: bytes | None, row: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append((key, dict(row)))
        if self.image is None:
            raise SchemaError("no image")
        return {c: self.image[c] if v is UNCHANGED else v for c, v in row.items()}

    def note(self, topic: str, key: bytes | None, after: bytes | None) -> None:
        self.notes.append((topic, key, after))


def stream(
    start: Checkpoint | None = None,
    filler: Filler | None = None,
    on_message: Any = None,
    identity: str = "d",
) -> ChangeStream:
    types = TypeMap()

    def schema_for(rel: Relation) -> TableSchema:
        return TableSchema.from_relation(
            rel, source_name="shop", db="db", types=types, key_for=lambda r: ("id",)
        )

    s = ChangeStream(
        start=start or Checkpoint(0),
        schema_for=schema_for,
        toast=filler or Filler(),
        on_message=on_message,
        clock_ms=lambda: NOW,
    )
    s.feed(xlog(wire.relation(OID, "public", "items", COLUMNS, identity=identity)))
    return s


def txn(s: ChangeStream, *changes: bytes, commit_lsn: int = 0x500, xid: int = 812) -> None:
    s.feed(xlog(wire.begin(commit_lsn, TS, xid), 0x200))
    for i, change in enumerate(changes):
        s.feed(xlog(change, 0x300 + i))
    s.feed(xlog(wire.commit(commit_lsn, commit_lsn + 0x30, TS), commit_lsn))


def expected(
    op: str, key: int, before: Any, after: Any, lsn: int, order: int, commit_lsn: int = 0x500
) -> list[SourceRecord]:
    return event_records(
        topic="shop.public.items",
        key=orjson.dumps({"id": key}),
        op=op,  # type: ignore[arg-type]
        before=before,
        after=after,
        source={
            "connector": "postgres",
            "name": "shop",
            "db": "db",
            "schema": "public",
            "table": "items",
            "lsn": lsn,
            "commit_lsn": commit_lsn,
            "txId": 812,
            "ts_ms": TS_MS,
            "snapshot": "false",
        },
        ts_ms=NOW,
        transaction={"id": "812", "total_order": order, "data_collection_order": order},
    )


ROW = [b"1", b'say "hi"', b"2024-01-31 12:00:00+00", b'{"a": 1}']
# json/jsonb text goes into the event verbatim: the reference encoder gets it as a Fragment.
ROW_JSON = {
    "id": 1,
    "name": 'say "hi"',
    "at": "2024-01-31T12:00:00Z",
    "doc": orjson.Fragment(b'{"a": 1}'),
}


def test_events_are_byte_identical_to_the_shared_envelope_encoder() -> None:
    s = stream()
    updated = [b"1", b"new", None, b"[]"]
    txn(
        s,
        wire.insert(OID, ROW),
        wire.update(OID, updated),
        wire.delete(OID, [b"1", None, None, None]),
    )
    after_update = {"id": 1, "name": "new", "at": None, "doc": orjson.Fragment(b"[]")}
    want = (
        expected("c", 1, None, ROW_JSON, 0x300, 1)
        + expected("u", 1, None, after_update, 0x301, 2)
        + expected("d", 1, {"id": 1}, None, 0x302, 3)
    )
    got = s.records
    assert [r.value for r in got] == [r.value for r in want]
    assert got == want


def test_the_general_path_makes_the_same_bytes_as_the_fast_path() -> None:
    fast, general = stream(), stream()
    messages = [
        wire.insert(OID, ROW),
        wire.update(OID, [b"2", b"x", None, None], old=[b"1", None, None, None]),
        wire.update(OID, [b"2", b"y", None, b"1.50"]),
        wire.delete(OID, [b"2", b"y", None, b"1.50"], "O"),
    ]
    txn(fast, *messages)
    general.feed(xlog(wire.begin(0x500, TS, 812), 0x200))
    for i, m in enumerate(messages):
        general.handle(general.decoder.decode(m), 0x300 + i)
    general.feed(xlog(wire.commit(0x500, 0x530, TS), 0x500))
    assert fast.records == general.records


def test_a_key_change_is_a_delete_its_tombstone_and_a_create() -> None:
    s = stream()
    txn(s, wire.update(OID, [b"2", b"x", None, None], old=[b"1", None, None, None]))
    assert [(r.key, r.value and orjson.loads(r.value)["op"]) for r in s.records] == [
        (b'{"id":1}', "d"),
        (b'{"id":1}', None),
        (b'{"id":2}', "c"),
    ]


def test_the_checkpoint_is_the_end_of_the_last_commit() -> None:
    s = stream(Checkpoint(0x10))
    txn(s, wire.insert(OID, ROW), commit_lsn=0x500)
    records, checkpoint = s.cut()
    assert len(records) == 1
    assert checkpoint.lsn == 0x530 and checkpoint.txn_commit_lsn is None
    assert s.cut() == ([], checkpoint)


def test_a_cut_inside_a_transaction_says_how_many_events_are_in() -> None:
    s = stream(Checkpoint(0x10))
    s.feed(xlog(wire.begin(0x500, TS, 812)))
    s.feed(xlog(wire.insert(OID, ROW)))
    s.feed(xlog(wire.insert(OID, [b"2", None, None, None])))
    _, checkpoint = s.cut()
    assert (checkpoint.lsn, checkpoint.txn_commit_lsn, checkpoint.txn_events) == (0x10, 0x500, 2)


def test_resuming_inside_a_transaction_skips_the_events_already_written() -> None:
    s = stream(Checkpoint(0x10, txn_commit_lsn=0x500, txn_events=2))
    txn(s, *(wire.insert(OID, [b"%d" % i, None, None, None]) for i in range(1, 5)))
    ids = [orjson.loads(r.value)["after"]["id"] for r in s.records if r.value]
    orders = [orjson.loads(r.value)["transaction"]["total_order"] for r in s.records if r.value]
    assert ids == [3, 4] and orders == [3, 4]
    assert s.cut()[1].lsn == 0x530


def test_transactions_committed_before_the_checkpoint_are_skipped() -> None:
    s = stream(Checkpoint(0x600))
    txn(s, wire.insert(OID, ROW), commit_lsn=0x500)  # a duplicate of what the log has
    txn(s, wire.insert(OID, ROW), commit_lsn=0x600)  # commit exactly at the checkpoint: new
    assert len(s.records) == 1
    assert orjson.loads(s.records[0].value or b"")["source"]["commit_lsn"] == 0x600


def test_keepalives_advance_the_position_only_outside_a_transaction() -> None:
    s = stream(Checkpoint(0x10))
    assert s.advance(0x900)
    assert s.position.lsn == 0x900
    s.feed(xlog(wire.begin(0xA00, TS, 1)))
    assert not s.advance(0xB00)
    assert s.position.lsn == 0x900


def test_truncate_makes_a_keyless_t_event() -> None:
    s = stream()
    txn(s, wire.truncate([OID]))
    (record,) = s.records
    assert record.key is None and orjson.loads(record.value or b"")["op"] == "t"


def test_full_identity_fills_unchanged_toast_from_the_old_row() -> None:
    filler = Filler()
    s = stream(filler=filler, identity="f")
    txn(
        s,
        wire.update(OID, [b"1", b"new", None, "u"], old=[b"1", b"old", None, b"[1]"], old_kind="O"),
    )
    value = orjson.loads(s.records[0].value or b"")
    assert value["after"]["doc"] == [1] and value["before"]["doc"] == [1]
    assert filler.calls == []


def test_unchanged_toast_without_old_row_asks_the_filler_with_the_key() -> None:
    filler = Filler(image={"doc": {"big": True}})
    s = stream(filler=filler)
    txn(s, wire.update(OID, [b"1", b"new", None, "u"]))
    assert filler.calls == [(b'{"id":1}', {"id": 1, "name": "new", "at": None, "doc": UNCHANGED})]
    assert orjson.loads(s.records[0].value or b"")["after"]["doc"] == {"big": True}


def test_events_already_in_the_log_do_not_ask_the_filler() -> None:
    filler = Filler()  # would raise
    s = stream(Checkpoint(0x10, txn_commit_lsn=0x500, txn_events=1), filler=filler)
    txn(s, wire.update(OID, [b"1", b"new", None, "u"]), wire.insert(OID, ROW))
    assert filler.calls == [] and len(s.records) == 1


def test_tracked_topics_report_every_image_to_the_filler() -> None:
    filler = Filler()
    filler.tracked.add("shop.public.items")
    s = stream(filler=filler)
    txn(s, wire.insert(OID, ROW), wire.delete(OID, [b"1", None, None, None]))
    assert [(k, a and orjson.loads(a)) for _, k, a in filler.notes] == [
        (b'{"id":1}', orjson.loads(orjson.dumps(ROW_JSON))),
        (b'{"id":1}', None),
    ]


def test_changehub_messages_reach_the_handler_and_others_do_not() -> None:
    seen: list[tuple[str, int]] = []
    s = stream(on_message=lambda m, lsn, _: seen.append((m.prefix, lsn)))
    txn(
        s,
        wire.message("changehub.watermark", b"low", 0x301),
        wire.message("someone.else", b"x", 0x302),
    )
    s.feed(xlog(wire.message("changehub.heartbeat", b"", 0x900, transactional=False), 0x900))
    assert seen == [("changehub.watermark", 0x300), ("changehub.heartbeat", 0x900)]
    assert s.records == []


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([wire.insert(OID + 1, ROW)], "outside a transaction|before its Relation"),
        ([wire.begin(5, TS, 1), wire.insert(OID + 1, ROW)], "before its Relation"),
        ([wire.begin(5, TS, 1), wire.begin(6, TS, 2)], "inside open transaction"),
        ([wire.begin(5, TS, 1), wire.commit(6, 7, TS)], "does not match its Begin"),
        ([wire.begin(5, TS, 1), wire.insert(OID, ROW[:2])], "2 columns"),
        ([wire.stream_start(5, True)], "streaming is off"),
    ],
)
def test_impossible_sequences_fail_with_a_decode_error(messages: list[bytes], problem: str) -> None:
    s = stream()
    with pytest.raises((DecodeError, SchemaError), match=problem):
        for m in messages:
            s.feed(xlog(m))


def test_a_bad_value_names_the_column_and_table() -> None:
    s = stream()
    s.feed(xlog(wire.relation(OID + 1, "public", "prices", [(True, "id", 23), (False, "p", 701)])))
    with pytest.raises(SchemaError, match=r"column p \(type OID 701\) of public\.prices"):
        txn(s, wire.insert(OID + 1, [b"1", b"not a number"]))


def test_message_objects_from_the_handler_are_messages() -> None:
    got: list[Message] = []
    s = stream(on_message=lambda m, lsn, _: got.append(m))
    txn(s, wire.message("changehub.x", b"body", 1))
    assert got == [Message(None, True, 1, "changehub.x", b"body")]
