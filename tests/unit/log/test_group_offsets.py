from __future__ import annotations

import pytest

from hub.errors import CorruptLogError, UnknownTopicError
from log.api import OffsetSpec, Record, TopicConfig, TopicPartition
from log.files import group_file

from .conftest import OpenLog, records

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


def test_commits_merge_and_survive_reopening(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("t", TopicConfig(partitions=2))
    assert log.committed_offsets("search") == {}
    log.commit_offsets("search", {T0: 5, T1: 7})
    log.commit_offsets("search", {T0: 6})
    log.commit_offsets("wh/ü", {T1: 1})
    assert log.committed_offsets("search") == {T0: 6, T1: 7}
    log.close()
    again = open_log()
    assert again.committed_offsets("search") == {T0: 6, T1: 7}
    assert again.list_groups() == ["search", "wh/ü"]


def test_committing_for_an_unknown_topic_is_an_error(open_log: OpenLog) -> None:
    log = open_log()
    with pytest.raises(UnknownTopicError):
        log.commit_offsets("g", {TopicPartition("nope", 0): 1})


def test_reset_to_earliest_latest_offset_and_time(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("t", TopicConfig())
    log.append(T0, [Record(b"k", b"v", 100 * i) for i in range(1, 11)])
    assert log.reset_offsets("g", [T0], OffsetSpec("earliest")) == {T0: 0}
    assert log.reset_offsets("g", [T0], OffsetSpec("latest")) == {T0: 10}
    assert log.reset_offsets("g", [T0], OffsetSpec("offset", 99)) == {T0: 10}
    assert log.reset_offsets("g", [T0], OffsetSpec("timestamp", 450)) == {T0: 4}
    assert log.committed_offsets("g") == {T0: 4}


def test_a_torn_temporary_file_from_a_crash_is_ignored(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("t", TopicConfig())
    log.commit_offsets("g", {T0: 3})
    path = group_file(log.root, "g")
    path.with_name(path.name + ".tmp").write_bytes(b'{"v": 1, "gro')
    log.close()
    again = open_log()
    assert again.committed_offsets("g") == {T0: 3}
    assert not path.with_name(path.name + ".tmp").exists()


def test_a_damaged_offsets_file_is_reported(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("t", TopicConfig())
    log.append(T0, records(1))
    log.commit_offsets("g", {T0: 1})
    log.close()
    group_file(log.root, "g").write_bytes(b"{not json")
    again = open_log()
    with pytest.raises(CorruptLogError, match="delete it and reset"):
        again.committed_offsets("g")
