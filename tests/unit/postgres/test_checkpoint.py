from __future__ import annotations

import orjson
import pytest

from connectors.source.postgres.checkpoint import (
    Checkpoint,
    IncrementalProgress,
    SnapshotProgress,
)
from hub.errors import FatalError


def test_a_full_checkpoint_survives_json() -> None:
    cp = Checkpoint(
        lsn=0x16_B374D848,
        txn_commit_lsn=0x16_B3750000,
        txn_events=500,
        snapshot=SnapshotProgress(0x100, True, ("public.a", "public.b"), ("42", "x"), 1000),
        incremental=IncrementalProgress(("public.c",), ("7",), 10),
        tables=("public.a", "public.b"),
    )
    assert Checkpoint.from_dict(orjson.loads(orjson.dumps(cp.to_dict())), "shop") == cp


def test_optional_parts_are_left_out() -> None:
    assert Checkpoint(5, tables=("public.a",)).to_dict() == {
        "v": 1,
        "lsn": 5,
        "tables": ["public.a"],
    }


def test_a_transaction_is_written_if_its_commit_lies_before_the_position() -> None:
    cp = Checkpoint(0x500)
    assert cp.is_written(0x4FF)
    assert not cp.is_written(0x500)


@pytest.mark.parametrize(
    "bad",
    [{}, {"v": 2, "lsn": 1}, {"v": 1}, {"v": 1, "lsn": "x"}, {"v": 1, "lsn": 1, "txn": {}}],
)
def test_a_foreign_checkpoint_is_refused_with_what_to_do(bad: dict[str, object]) -> None:
    with pytest.raises(FatalError, match=r"not one a postgres source wrote.*reset"):
        Checkpoint.from_dict(bad, "shop")
