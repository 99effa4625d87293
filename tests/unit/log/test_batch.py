from __future__ import annotations

import pytest

from log.api import Record
from log.batch import (
    ATTR_TRANSACTIONAL,
    HEADER_SIZE,
    BatchError,
    decode_records,
    encode,
    encode_columns,
    read_header,
    set_base_offset,
    validate,
)


def roundtrip(records: list[Record], base: int = 0, now: int = 123) -> list[tuple[object, ...]]:
    b = encode(records, now)
    set_base_offset(b, base)
    data = b.to_bytes()
    h = validate(data)
    assert h.size == len(data)
    out = decode_records(data, 0, h, "t", 3)
    return [(r.offset, r.timestamp_ms, r.key, r.value, r.headers) for r in out]


def test_records_come_back_with_dense_offsets_from_the_base() -> None:
    out = roundtrip([Record(b"a", b"1", 5), Record(b"b", b"22", 5)], base=40)
    assert out == [(40, 5, b"a", b"1", ()), (41, 5, b"b", b"22", ())]


def test_null_and_empty_keys_and_values_are_distinct() -> None:
    recs = [Record(None, b""), Record(b"", None), Record(None, None), Record(b"k", b"v")]
    out = roundtrip(recs)
    assert [(k, v) for _, _, k, v, _ in out] == [
        (None, b""),
        (b"", None),
        (None, None),
        (b"k", b"v"),
    ]


def test_zero_timestamps_become_now_and_others_are_kept() -> None:
    out = roundtrip([Record(b"a", b"1", 0), Record(b"b", b"2", 7), Record(b"c", b"3", 0)], now=99)
    assert [ts for _, ts, *_ in out] == [99, 7, 99]


def test_headers_survive_for_the_records_that_have_them() -> None:
    recs = [Record(b"a", b"1", 0, (("trace", b"x"), ("é", b""))), Record(b"b", b"2")]
    out = roundtrip(recs)
    assert out[0][4] == (("trace", b"x"), ("é", b""))
    assert out[1][4] == ()


def test_header_fields_describe_the_batch() -> None:
    b = encode(
        [Record(b"a", b"1", 10), Record(b"b", b"2", 30), Record(b"c", b"3", 20)],
        0,
        attributes=ATTR_TRANSACTIONAL,
        producer_id=77,
        producer_seq=5,
    )
    set_base_offset(b, 1000)
    h = read_header(b.to_bytes())
    assert (h.base_offset, h.record_count, h.next_offset) == (1000, 3, 1003)
    assert (h.first_timestamp, h.max_timestamp) == (10, 30)
    assert h.transactional and (h.producer_id, h.producer_seq) == (77, 5)


def test_offset_gaps_round_trip_for_compacted_batches() -> None:
    b = encode_columns([b"a", b"b"], [b"1", None], [5, 6], None, offset_deltas=[0, 7])
    set_base_offset(b, 10)
    data = b.to_bytes()
    h = validate(data)
    assert h.next_offset == 18
    assert [r.offset for r in decode_records(data, 0, h, "t", 0)] == [10, 17]


def test_base_offset_is_outside_the_crc_so_it_can_be_set_after_encoding() -> None:
    b = encode([Record(b"a", b"1")], 1)
    set_base_offset(b, 123456)
    validate(b.to_bytes())


@pytest.mark.parametrize("position", [HEADER_SIZE - 1, HEADER_SIZE + 3, -1])
def test_a_flipped_byte_fails_the_crc(position: int) -> None:
    data = bytearray(encode([Record(b"key", b"value" * 10)] * 3, 1).to_bytes())
    data[position] ^= 0x40
    with pytest.raises(BatchError, match="CRC32C"):
        validate(bytes(data))


def test_a_cut_off_batch_is_detected() -> None:
    data = bytes(encode([Record(b"key", b"value")], 1).to_bytes())
    with pytest.raises(BatchError, match="cut off"):
        validate(data[:-1])
    with pytest.raises(BatchError, match="header needs"):
        read_header(data[:10])


def test_unknown_format_version_is_rejected() -> None:
    data = bytearray(encode([Record(b"key", b"value")], 1).to_bytes())
    data[16] = 9
    with pytest.raises(BatchError, match="format version 9"):
        read_header(bytes(data))


def test_an_empty_batch_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        encode([], 1)
