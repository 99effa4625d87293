from __future__ import annotations

import orjson

from connectors.source.postgres.resume import (
    ReadRange,
    ResumedReads,
    SnapshotVisibility,
    add_range,
    key_orderable,
)
from connectors.source.postgres.schema import TableSchema
from connectors.source.postgres.types import TypeMap


def table(key_type: int = 20) -> TableSchema:
    return TableSchema(
        source_name="shop",
        db="db",
        oid=1,
        schema="public",
        table="items",
        columns=["id", "v"],
        type_oids=[key_type, 25],
        key=["id"],
        identity="d",
        types=TypeMap(),
    )


def key(value: object) -> bytes:
    return orjson.dumps({"id": value})


def test_visibility_follows_xmin_xmax_and_in_progress_xids() -> None:
    snap = SnapshotVisibility.parse("100:105:101,103")
    assert snap.sees(99) and snap.sees(100) and snap.sees(102) and snap.sees(104)
    assert not snap.sees(101) and not snap.sees(103)
    assert not snap.sees(105) and not snap.sees(200)


def test_visibility_compares_32_bit_stream_xids_across_epochs() -> None:
    epoch = 3 << 32
    snap = SnapshotVisibility(epoch + 5, epoch + 10, frozenset())
    assert snap.sees(4) and not snap.sees(10)
    assert snap.sees(0xFFFFFFF0)  # just before the wrap: the previous epoch, long committed
    snap = SnapshotVisibility(epoch - 20, epoch - 10, frozenset())
    assert snap.sees(0xFFFFFFE0) and not snap.sees(0xFFFFFFF8) and not snap.sees(3)


def test_a_change_is_covered_only_inside_the_range_and_the_snapshot() -> None:
    snap = SnapshotVisibility(100, 105, frozenset())
    reads = ResumedReads([ReadRange("public.items", ("750",), snap, until=9000)])
    t = table()
    assert reads.covers(t, key(751), 99)
    assert not reads.covers(t, key(750), 99)  # read before the crash, in the exact snapshot
    assert not reads.covers(t, key(751), 105)  # committed after the new snapshot
    assert not reads.covers(t, None, 99)


def test_the_latest_range_starting_below_a_key_decides() -> None:
    first = SnapshotVisibility(100, 105, frozenset())
    second = SnapshotVisibility(200, 205, frozenset())
    reads = ResumedReads(
        [
            ReadRange("public.items", None, first, until=9000),
            ReadRange("public.items", ("500",), second, until=9000),
        ]
    )
    t = table()
    assert reads.covers(t, key(10), 150) is False  # in the first range, not seen by it
    assert reads.covers(t, key(10), 99)
    assert reads.covers(t, key(600), 150)  # in the second, which saw 150


def test_ranges_go_once_the_stream_passes_them_or_the_table_is_truncated() -> None:
    snap = SnapshotVisibility(100, 105, frozenset())
    reads = ResumedReads(
        [ReadRange("public.items", None, snap, 500), ReadRange("public.other", None, snap, 900)]
    )
    assert not reads.passed(499)
    assert reads.passed(500) and [r.table for r in reads.ranges] == ["public.other"]
    reads.truncated("public.other")
    assert not reads.ranges


def test_a_range_from_the_same_start_replaces_the_older() -> None:
    old = ReadRange("public.items", None, SnapshotVisibility(1, 2, frozenset()), 5)
    new = ReadRange("public.items", None, SnapshotVisibility(3, 4, frozenset()), 6)
    assert add_range((old,), new) == (new,)
    later = ReadRange("public.items", ("9",), SnapshotVisibility(5, 6, frozenset()), 7)
    assert add_range((new,), later) == (new, later)


def test_a_range_survives_json() -> None:
    r = ReadRange("public.items", ("a", "1"), SnapshotVisibility(1, 9, frozenset({3, 5})), 77)
    assert ReadRange.from_dict(orjson.loads(orjson.dumps(r.to_dict()))) == r


def test_uuid_integer_and_c_collated_text_keys_are_comparable() -> None:
    assert key_orderable([20, 2950], ["", ""])
    assert key_orderable([25], ["C"])
    assert not key_orderable([25], ["en_US.UTF-8"])
    assert not key_orderable([1700], [""])
