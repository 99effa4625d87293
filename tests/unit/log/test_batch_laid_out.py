"""Records handed to the log already laid out as a batch's columns (``RecordColumns``)."""

from __future__ import annotations

import struct

import pytest

from log.api import Record
from log.batch import RecordColumns, encode


def laid_out(keys: list[bytes | None], values: list[bytes], ts: int) -> RecordColumns:
    n = len(values)
    klens = struct.pack(f"<{n}i", *(-1 if k is None else len(k) for k in keys))
    vlens = struct.pack(f"<{n}i", *map(len, values))
    return RecordColumns(klens, b"".join(k for k in keys if k), vlens, b"".join(values), ts)


@pytest.mark.parametrize("ts", [0, 17])
@pytest.mark.parametrize("keyed", [True, False])
def test_laid_out_columns_encode_to_the_same_bytes_as_the_records(ts: int, keyed: bool) -> None:
    keys: list[bytes | None] = [b'{"id":1}', b'{"id":22}', b""] if keyed else [None] * 3
    values = [b"one", b"", b"three\xff"]
    records = [Record(k, v, ts) for k, v in zip(keys, values, strict=True)]
    columns = laid_out(keys, values, ts)
    for checkpoint in (None, b'{"lsn":1}'):
        ours = encode(columns, 99, producer_id=5, producer_seq=6, checkpoint=checkpoint)
        theirs = encode(records, 99, producer_id=5, producer_seq=6, checkpoint=checkpoint)
        assert ours.to_bytes() == theirs.to_bytes()
    assert list(columns) == records
    assert columns[1] == records[1] and len(columns) == 3


def test_length_columns_of_different_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="one i32 per record"):
        RecordColumns(b"\0" * 4, b"", b"\0" * 8, b"", 0)
