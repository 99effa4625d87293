from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import UsageError
from log.api import Durability, TopicConfig
from log.embedded import EmbeddedLog
from log.factory import open_log


def test_embedded_backend_opens_an_embedded_log(tmp_path: Path) -> None:
    log = open_log(
        "embedded", tmp_path / "log", Durability(), TopicConfig(partitions=3), background_jobs=False
    )
    try:
        assert isinstance(log, EmbeddedLog)
        assert log.default_topic_config.partitions == 3
    finally:
        log.close()


def test_kafka_backend_needs_its_cluster_settings(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"needs a log\.kafka section"):
        open_log("kafka", tmp_path, Durability(), TopicConfig())


def test_unknown_backend_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="embedded, kafka"):
        open_log("s3", tmp_path, Durability(), TopicConfig())
