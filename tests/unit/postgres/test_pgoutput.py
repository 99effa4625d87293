from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.source.postgres.pgoutput import (
    UNCHANGED,
    Begin,
    Column,
    Commit,
    DecodeError,
    Delete,
    Insert,
    Message,
    Origin,
    PgOutputDecoder,
    Relation,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    TypeInfo,
    Update,
    pg_time_to_unix_ms,
)
from tests.unit.postgres import wire


def decode(data: bytes, version: int = 1) -> object:
    return PgOutputDecoder(version).decode(data)


def test_begin_and_commit_carry_positions_time_and_xid() -> None:
    assert decode(wire.begin(0x16_00000100, 765_000_000, 812)) == Begin(
        0x16_00000100, 765_000_000, 812
    )
    assert decode(wire.commit(0x100, 0x138, 765_000_000)) == Commit(0, 0x100, 0x138, 765_000_000)


def test_protocol_time_converts_to_unix_milliseconds() -> None:
    assert pg_time_to_unix_ms(0) == 946_684_800_000
    assert pg_time_to_unix_ms(1_500) == 946_684_800_001


def test_relation_lists_columns_with_key_flags_and_types() -> None:
    data = wire.relation(
        16384, "public", "orders", [(True, "id", 23), (False, "note", 25)], identity="f"
    )
    assert decode(data) == Relation(
        None,
        16384,
        "public",
        "orders",
        "f",
        (Column(True, "id", 23, -1), Column(False, "note", 25, -1)),
    )


def test_insert_keeps_text_values_nulls_and_unchanged_markers() -> None:
    msg = decode(wire.insert(16384, [b"1", None, "u", b""]))
    assert msg == Insert(None, 16384, [b"1", None, UNCHANGED, b""])


def test_update_with_and_without_old_tuple() -> None:
    assert decode(wire.update(7, [b"2", b"x"])) == Update(None, 7, None, None, [b"2", b"x"])
    assert decode(wire.update(7, [b"2", b"x"], old=[b"1", None], old_kind="K")) == Update(
        None, 7, "K", [b"1", None], [b"2", b"x"]
    )
    full = decode(wire.update(7, [b"2", "u"], old=[b"2", b"big"], old_kind="O"))
    assert full == Update(None, 7, "O", [b"2", b"big"], [b"2", UNCHANGED])


def test_delete_with_key_or_full_old_row() -> None:
    assert decode(wire.delete(7, [b"1", None])) == Delete(None, 7, "K", [b"1", None])
    assert decode(wire.delete(7, [b"1", b"a"], "O")) == Delete(None, 7, "O", [b"1", b"a"])


def test_truncate_lists_relations_and_options() -> None:
    assert decode(wire.truncate([1, 2, 3], options=3)) == Truncate(None, True, True, (1, 2, 3))
    assert decode(wire.truncate([9])) == Truncate(None, False, False, (9,))


def test_logical_message_keeps_prefix_and_raw_content() -> None:
    data = wire.message("changehub.heartbeat", b"\x00\xffhi", 0x55, transactional=False)
    assert decode(data) == Message(None, False, 0x55, "changehub.heartbeat", b"\x00\xffhi")


def test_type_and_origin_messages() -> None:
    assert decode(wire.type_message(16500, "public", "mood")) == TypeInfo(
        None, 16500, "public", "mood"
    )
    assert decode(wire.origin(0x99, "node_a")) == Origin(0x99, "node_a")


def test_streamed_changes_carry_their_subtransaction_xid_between_start_and_stop() -> None:
    d = PgOutputDecoder(2)
    assert d.decode(wire.stream_start(700, first=True)) == StreamStart(700, True)
    assert d.decode(wire.relation(5, "public", "t", [(True, "id", 23)], xid=700)) == Relation(
        700, 5, "public", "t", "d", (Column(True, "id", 23, -1),)
    )
    assert d.decode(wire.insert(5, [b"1"], xid=701)) == Insert(701, 5, [b"1"])
    assert d.decode(wire.update(5, [b"2"], xid=701)) == Update(701, 5, None, None, [b"2"])
    assert d.decode(wire.delete(5, [b"2"], xid=700)) == Delete(700, 5, "K", [b"2"])
    assert d.decode(wire.truncate([5], xid=700)) == Truncate(700, False, False, (5,))
    assert d.decode(wire.message("p", b"x", 1, xid=700)) == Message(700, True, 1, "p", b"x")
    assert d.decode(wire.stream_stop()) == StreamStop()
    # Outside the stream block the same messages have no xid again.
    assert d.decode(wire.insert(5, [b"3"])) == Insert(None, 5, [b"3"])
    assert d.decode(wire.stream_commit(700, 0x10, 0x18, 42)) == StreamCommit(700, 0, 0x10, 0x18, 42)
    assert d.decode(wire.stream_abort(700, 701)) == StreamAbort(700, 701)


def test_protocol_4_stream_abort_has_lsn_and_time() -> None:
    data = wire.stream_abort(700, 700) + (0x20).to_bytes(8, "big") + (5).to_bytes(8, "big")
    assert decode(data, version=4) == StreamAbort(700, 700, 0x20, 5)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty"),
        (b"Z", "unknown message type"),
        (wire.begin(1, 2, 3)[:-1], "malformed"),
        (wire.insert(1, [b"abc"])[:-1], "past the message end"),
        (wire.insert(1, [b"a"]) + b"!", "trailing bytes"),
        (wire.insert(1, [b"a"]).replace(b"N\x00", b"X\x00"), "expected 'N'"),
        (wire.insert(1, [b"a"]).replace(b"\x00\x01t", b"\x00\x01q"), "unknown tuple column kind"),
        (wire.relation(1, "s", "t", [(True, "id", 23)]).replace(b"\x00d", b"\x00z"), "identity"),
        (wire.relation(1, "s", "t", [])[:8], "malformed"),
        (wire.message("p", b"abc", 1)[:-2], "past the message end"),
        (wire.truncate([1, 2])[:-1], "past the message end"),
        (wire.delete(1, [b"a"]).replace(b"K", b"Q", 1), "expected 'K' or 'O'"),
    ],
)
def test_malformed_input_raises_decode_error_naming_the_problem(data: bytes, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        decode(data)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(b"BCORYIUDTMSEcA"))
def test_random_bytes_decode_or_raise_decode_error(body: bytes, tag: int) -> None:
    with contextlib.suppress(DecodeError):
        PgOutputDecoder(2).decode(bytes([tag]) + body)
