"""One source, one writer: the lease on a source goes to one hub process at a time and moves
when its holder leaves, and a holder that lost it (stalled, unaware) is fenced: its next
append fails and the new holder starts from the last checkpoint it wrote."""

from __future__ import annotations

import pytest

from hub.errors import SourceFencedError
from log.api import Record, TopicConfig, TopicPartition
from log.kafka import KafkaLog
from log.kafka.groups import GroupMember, lease_group
from tests.fixtures.services import KafkaCluster
from tests.integration.kafka.conftest import unique
from tests.integration.scaleout.hubs import wait_until

pytestmark = pytest.mark.integration


def test_a_new_holder_fences_the_old_writer_before_it_reads_the_checkpoint(
    kafka: KafkaCluster,
) -> None:
    source, topic = unique("src"), unique("leased")
    old, new = KafkaLog(kafka.bootstrap, timeout=20.0), KafkaLog(kafka.bootstrap, timeout=20.0)
    try:
        old.create_topic(topic, TopicConfig())
        tp = TopicPartition(topic, 0)
        old.append_checkpointed(source, {tp: [Record(b"k", b"1")]}, {"pos": 1})
        new.claim_source(source)
        assert new.last_checkpoint(source) == {"pos": 1}
        with pytest.raises(SourceFencedError, match="taken over"):
            old.append_checkpointed(source, {tp: [Record(b"k", b"2")]}, {"pos": 2})
        new.append_checkpointed(source, {tp: [Record(b"k", b"2'")]}, {"pos": 2})
        assert [r.value for r in new.read(tp, 0)] == [b"1", b"2'"]
        assert old.last_checkpoint(source) == {"pos": 2}
    finally:
        old.close()
        new.close()


def test_the_lease_goes_to_one_process_and_moves_when_it_leaves(kafka: KafkaCluster) -> None:
    source = unique("src")
    log = KafkaLog(kafka.bootstrap, timeout=20.0)
    held = {"a": False, "b": False}

    def member(name: str) -> GroupMember:
        def assign(tps: list[TopicPartition]) -> None:
            held[name] = held[name] or bool(tps)

        def revoke(tps: list[TopicPartition]) -> None:
            held[name] = held[name] and not tps

        return log.lease(
            lease_group("source", source), on_assign=assign, on_revoke=revoke, on_lost=revoke
        )

    a, b = member("a"), member("b")
    try:

        def decided() -> bool:
            a.poll(0.05)
            b.poll(0.05)
            return a.rebalanced and b.rebalanced and held["a"] != held["b"]

        wait_until(decided, "one holder of the lease", 60)
        holder, other, name = (a, b, "b") if held["a"] else (b, a, "a")
        holder.close()  # a clean stop leaves the group

        def moved() -> bool:
            other.poll(0.05)
            return held[name]

        took = wait_until(moved, "the lease to move", 60)
        assert took < 15, took  # one rebalance, not a session timeout
    finally:
        a.close()
        b.close()
        log.close()
