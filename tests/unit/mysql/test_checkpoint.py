"""Checkpoints, GTID states, positions and replays of :mod:`connectors.source.mysql.checkpoint`."""

from __future__ import annotations

import pytest

from connectors.source.mysql.checkpoint import (
    Checkpoint,
    GtidState,
    Position,
    Replay,
    SnapshotProgress,
)
from hub.errors import FatalError


def test_checkpoint_survives_a_json_round_trip() -> None:
    cp = Checkpoint(
        Position("0-1-12,1-2-5", "mysql-bin.000002", 4711),
        skip=3,
        skip_tx="0-1-13",
        snapshot=SnapshotProgress(("shop.a", "shop.b"), (42, "x"), 1000),
        replays=(Replay(Position("0-1-20", "mysql-bin.000002", 9000), {"shop.a": (42, "x")}),),
    )
    assert Checkpoint.from_dict(cp.to_dict(), "s") == cp


def test_a_checkpoint_of_another_version_is_refused_with_a_way_out() -> None:
    with pytest.raises(FatalError, match="changehub reset"):
        Checkpoint.from_dict({"v": 99, "gtid": None, "file": "f", "pos": 4}, "s")


def test_gtid_state_keeps_the_last_transaction_per_domain() -> None:
    state = GtidState("0-1-12,1-2-5")
    state.add(0, 1, 13)
    state.add(2, 3, 1)
    assert str(state) == "0-1-13,1-2-5,2-3-1"
    assert state.contains(0, 13) and not state.contains(0, 14)
    assert not state.contains(7, 1)
    assert not GtidState("") and str(GtidState("")) == ""


def test_position_covers_transactions_up_to_it_by_gtid_or_by_file_position() -> None:
    by_gtid = Position("0-1-10", "mysql-bin.000001", 500)
    assert by_gtid.covers((0, 10), "mysql-bin.000009", 1)
    assert not by_gtid.covers((0, 11), "mysql-bin.000001", 1)
    by_file = Position(None, "mysql-bin.000002", 500)
    assert by_file.covers(None, "mysql-bin.000001", 90000)
    assert by_file.covers(None, "mysql-bin.000002", 500)
    assert not by_file.covers(None, "mysql-bin.000002", 501)


def test_replay_leaves_out_only_the_unread_part_of_each_table() -> None:
    replay = Replay(Position("0-1-10", "f", 1), {"shop.current": (100,), "shop.later": None})
    assert replay.leaves_out("shop.current", (101,))
    assert not replay.leaves_out("shop.current", (100,))
    assert replay.leaves_out("shop.later", (1,))
    assert not replay.leaves_out("shop.done", (1,))


def test_the_fast_constructors_make_the_same_frozen_objects() -> None:
    from dataclasses import FrozenInstanceError

    from connectors.source.mysql.checkpoint import checkpoint_at, position_at

    p = position_at("0-1-7", "mysql-bin.000003", 99)
    assert p == Position("0-1-7", "mysql-bin.000003", 99)
    assert hash(p) == hash(Position("0-1-7", "mysql-bin.000003", 99))
    replays = (Replay(Position("0-1-9", "f", 4), {"shop.a": None}),)
    history = {"tables": {}}
    cp = checkpoint_at(p, 2, "0-1-8", replays, None, history)
    assert cp == Checkpoint(p, 2, "0-1-8", None, replays, None, history)
    assert cp.to_dict() == Checkpoint(p, 2, "0-1-8", None, replays, None, history).to_dict()
    with pytest.raises(FrozenInstanceError):
        p.pos = 5  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        cp.skip = 0  # type: ignore[misc]
