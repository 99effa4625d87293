"""The read-only view the CLI opens next to a running hub."""

from __future__ import annotations

import threading

import pytest

from hub.errors import UsageError
from log.api import TopicConfig, TopicPartition

from .conftest import OpenLog, records
from .test_checkpoints import write_uncommitted

TP = TopicPartition("t", 0)


def test_a_view_reads_a_log_another_writer_has_open(open_log: OpenLog) -> None:
    writer = open_log()
    writer.create_topic("t", TopicConfig(segment_bytes=1000))
    writer.append(TP, records(10, size=50))
    writer.append_checkpointed("pg", {TP: records(2)}, {"lsn": 3})
    writer.commit_offsets("g", {TP: 4})
    view = open_log(read_only=True)
    assert view.list_topics() == ["t"]
    assert view.end_offset(TP) == 12
    assert [r.offset for r in view.read(TP, 0, max_records=3)] == [0, 1, 2]
    assert view.last_checkpoint("pg") == {"lsn": 3}
    assert view.committed_offsets("g") == {TP: 4}


def test_a_view_follows_appends_and_rolls(open_log: OpenLog) -> None:
    writer = open_log()
    writer.create_topic("t", TopicConfig(segment_bytes=1000))
    view = open_log(read_only=True)
    assert view.end_offset(TP) == 0
    for i in range(10):
        writer.append(TP, records(5, start=i * 5, size=50))
    writer.append_checkpointed("pg", {TP: records(1)}, {"lsn": 9})
    assert view.end_offset(TP) == 51
    assert view.last_checkpoint("pg") == {"lsn": 9}
    seen: list[int] = []
    while len(seen) < 51:
        seen += [r.offset for r in view.read(TP, len(seen))]
    assert seen == list(range(51))


def test_a_view_hides_records_whose_checkpoint_is_not_written(open_log: OpenLog) -> None:
    writer = open_log()
    writer.create_topic("t", TopicConfig())
    writer.append(TP, records(2))
    write_uncommitted(writer, TP, "pg", 3)
    view = open_log(read_only=True)
    assert view.end_offset(TP) == 2


def test_a_view_waiting_for_records_gets_them(open_log: OpenLog) -> None:
    writer = open_log()
    writer.create_topic("t", TopicConfig())
    view = open_log(read_only=True)
    out: list[int] = []
    t = threading.Thread(target=lambda: out.extend(r.offset for r in view.read(TP, 0, timeout=10)))
    t.start()
    writer.append(TP, records(1))
    t.join()
    assert out == [0]


def test_a_view_refuses_writes(open_log: OpenLog) -> None:
    writer = open_log()
    writer.create_topic("t", TopicConfig())
    view = open_log(read_only=True)
    with pytest.raises(UsageError, match="read-only"):
        view.append(TP, records(1))
    with pytest.raises(UsageError, match="read-only"):
        view.create_topic("u", TopicConfig())


def test_a_view_of_a_directory_that_is_no_log_is_a_usage_error(open_log: OpenLog) -> None:
    with pytest.raises(UsageError, match="no changehub log"):
        open_log(read_only=True)
