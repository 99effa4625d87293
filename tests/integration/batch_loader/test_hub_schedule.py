"""The hub runs a batch sink with ``schedule:`` as a scheduled export, not continuously."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.config import load_pipeline
from hub.runtime import Hub
from hub.schedule import ScheduledExportWorker
from hub.state import ConnectorState
from log.api import TopicConfig, TopicPartition
from tests.unit.batch_loader.conftest import T0, TOPIC, change

PIPELINE = """
log: {backend: embedded, path: ./log}
api: {enabled: false}
sources: []
sinks:
  - {name: nightly, type: batch, topics: ["shop.*"], path: ./out, schedule: "0 2 * * *",
     timezone: Europe/Paris}
"""


def test_a_scheduled_batch_sink_waits_for_its_fire_time_under_the_hub(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE.replace("./", f"{tmp_path}/"))
    hub = Hub(load_pipeline(tmp_path / "pipeline.yaml"))
    hub.log.create_topic(TOPIC, TopicConfig())
    hub.log.append(TopicPartition(TOPIC, 0), change("c", 1, "a", T0))
    hub.start()
    try:
        worker = hub.worker("nightly")
        assert isinstance(worker, ScheduledExportWorker)
        deadline = time.monotonic() + 10
        while worker.status.state != ConnectorState.RUNNING:
            assert time.monotonic() < deadline, worker.status
            time.sleep(0.01)
        assert worker.next_run > datetime.now(UTC)
        assert worker.next_run.astimezone(ZoneInfo("Europe/Paris")).hour == 2
        # Nothing is exported continuously: the records wait for 02:00.
        assert hub.log.committed_offsets("nightly") == {}
        assert not (tmp_path / "out").exists()
    finally:
        hub.stop()
    assert worker.status.state.value == "STOPPED"
