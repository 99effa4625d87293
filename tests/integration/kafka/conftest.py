"""Fixtures for running the log contract against both backends.

``log_factory`` is parametrized over ``embedded`` (a directory under ``tmp_path``) and
``kafka`` (the session's one-broker cluster from :mod:`tests.fixtures.services`). Its
``open()`` makes a log instance on the same storage every time, so a test can close a log and
open it again as a restarted hub would. Names (topics, groups, sources) come from
:func:`unique` because the Kafka cluster is shared by the whole session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from log.api import Durability, Log, TopicConfig
from log.embedded import EmbeddedLog
from tests.fixtures.services import KafkaCluster


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class LogFactory:
    """Opens logs of one backend on the same storage; closes them all at the end."""

    def __init__(self, backend: str, path: Path, bootstrap: str | None) -> None:
        self.backend = backend
        self.path = path
        self.bootstrap = bootstrap
        self._opened: list[Log] = []

    def open(self, *, read_only: bool = False) -> Log:
        log: Log
        if self.backend == "embedded":
            log = EmbeddedLog(
                self.path, Durability(), TopicConfig(), background_jobs=False, read_only=read_only
            )
        else:
            from log.kafka import KafkaLog

            assert self.bootstrap is not None
            log = KafkaLog(self.bootstrap, timeout=20.0, read_only=read_only)
        self._opened.append(log)
        return log

    def close_all(self) -> None:
        for log in self._opened:
            log.close()


@pytest.fixture
def embedded_log(tmp_path: Path) -> Iterator[LogFactory]:
    factory = LogFactory("embedded", tmp_path / "log", None)
    yield factory
    factory.close_all()


@pytest.fixture
def kafka_log(kafka: KafkaCluster) -> Iterator[LogFactory]:
    factory = LogFactory("kafka", Path(), kafka.bootstrap)
    yield factory
    factory.close_all()


@pytest.fixture(params=["embedded", "kafka"])
def log_factory(request: pytest.FixtureRequest) -> LogFactory:
    factory = request.getfixturevalue(f"{request.param}_log")
    assert isinstance(factory, LogFactory)
    return factory


@pytest.fixture
def log(log_factory: LogFactory) -> Log:
    return log_factory.open()


@pytest.fixture
def topic(log: Log) -> str:
    name = unique("contract")
    log.create_topic(name, TopicConfig(partitions=2))
    return name
