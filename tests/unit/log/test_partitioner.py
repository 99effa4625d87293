from __future__ import annotations

import pytest

from log.partitioner import murmur2, partition_for

# Values computed by Kafka's own Utils.murmur2 (quoted in the test suites of Kafka clients
# that check Java compatibility: akka's Murmur2Spec, kafka-python's test_partitioner).
KAFKA_HASHES = {
    b"1": -1993445489,
    b"12": 126087238,
    b"123": -267702483,
    b"1234": -1614185708,
    b"12345": -1188365604,
}
KAFKA_PARTITIONS_OF_1000 = {
    b"": 681,
    b"a": 524,
    b"ab": 434,
    b"abc": 107,
    b"123456789": 566,
    b"\x00 ": 742,
}


@pytest.mark.parametrize(("key", "expected"), KAFKA_HASHES.items())
def test_murmur2_matches_kafka_utils_murmur2(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@pytest.mark.parametrize(("key", "expected"), KAFKA_PARTITIONS_OF_1000.items())
def test_partition_matches_kafka_default_partitioner(key: bytes, expected: int) -> None:
    assert partition_for(key, 1000) == expected


def test_single_partition_and_null_key_go_to_partition_zero() -> None:
    assert partition_for(b"anything", 1) == 0
    assert partition_for(None, 12) == 0


def test_partition_is_stable_and_in_range() -> None:
    for i in range(2000):
        key = b'{"id":%d}' % i
        p = partition_for(key, 7)
        assert 0 <= p < 7
        assert p == partition_for(key, 7)


def test_zero_partitions_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for(b"k", 0)
