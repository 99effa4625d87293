"""A scheduled batch export runs in one of the hub processes sharing a pipeline: one holds
its lease and keeps the schedule, the other stands by, and takes the schedule over when the
holder is killed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.services import KafkaCluster
from tests.integration.kafka.conftest import unique
from tests.integration.scaleout.hubs import Hub, wait_until

pytestmark = pytest.mark.integration


def test_one_process_keeps_a_scheduled_export_and_another_takes_it_over(
    kafka: KafkaCluster, tmp_path: Path
) -> None:
    sink = unique("nightly")
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        f"""
log: {{backend: kafka, kafka: {{bootstrap: "{kafka.bootstrap}"}}}}
api: {{enabled: false}}
sinks:
  - name: {sink}
    type: batch
    topics: ["{sink}.*"]
    path: ./exports
    schedule: "0 2 * * *"
"""
    )
    holds, stands_by = f"export {sink}: this process holds", f"export {sink}: standing by"
    scheduled = f"sink {sink}: next export at"
    with Hub("a", config, tmp_path / "a", {}) as a, Hub("b", config, tmp_path / "b", {}) as b:
        wait_until(lambda: a.says(holds) + b.says(holds) == 1, "one holder of the export")
        holder, other = (a, b) if a.says(holds) else (b, a)
        # (a rebalance while the second process joins may tell it to stand by more than once)
        wait_until(lambda: other.says(stands_by) >= 1, "the other to stand by")
        wait_until(lambda: holder.says(scheduled) == 1, "the holder to schedule the export")
        assert other.says(scheduled) == 0 and other.says(holds) == 0
        holder.kill()
        took = wait_until(lambda: other.says(holds) == 1, "the other to take the export over")
        wait_until(lambda: other.says(scheduled) == 1, "the new holder to schedule the export")
        assert took < 45, took
        assert other.stop() == 0, other.text()[-4000:]
