"""A broker outage: appends fail with a LogStorageError naming the cluster (and their
records are not delivered later behind the caller's back); after the broker is back, the
same log appends and reads again."""

from __future__ import annotations

import pytest

from hub.errors import LogStorageError
from log.api import Record, TopicConfig, TopicPartition
from log.kafka import KafkaLog
from tests.fixtures.services import KafkaCluster, ServiceFactory
from tests.integration.kafka.test_log_contract import read_all

pytestmark = pytest.mark.integration


def test_appends_fail_clearly_while_the_broker_is_down_and_work_after(
    start_service: ServiceFactory,
) -> None:
    cluster = start_service("kafka")
    assert isinstance(cluster, KafkaCluster)
    log = KafkaLog(cluster.bootstrap, timeout=5.0)
    tp = TopicPartition("outage", 0)
    try:
        log.create_topic(tp.topic, TopicConfig())
        log.append(tp, [Record(b"k", b"before")])
        cluster.stop()
        with pytest.raises(LogStorageError, match=cluster.bootstrap):
            log.append(tp, [Record(b"k", b"during")])
        restarted = cluster.start()
        assert restarted.bootstrap == cluster.bootstrap
        log.append(tp, [Record(b"k", b"after")])
        assert [r.value for r in read_all(log, tp)] == [b"before", b"after"]
    finally:
        log.close()
