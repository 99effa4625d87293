"""Two hub processes run one Postgres -> OpenSearch pipeline on Kafka; the one running the
source is killed with SIGKILL mid-stream. The other takes the source over (its lease) and the
dead one's sink partitions (its consumer group), and afterwards the index equals the table:
the same ids, the same fields, no other document."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import opensearchpy
import pytest

from tests.fixtures.services import KafkaCluster, OpenSearchServer, PostgresServer
from tests.integration.kafka.conftest import unique
from tests.integration.postgres.conftest import _database
from tests.integration.postgres.pipeline import Database
from tests.integration.scaleout.hubs import Hub, wait_until
from tests.integration.search.test_pipeline import (
    SCHEMA,
    documents,
    expected_orders,
    insert_orders,
    normalised,
    workload,
)

pytestmark = pytest.mark.integration

LEASE = "holds its lease"


@pytest.fixture
def db(postgres: PostgresServer) -> Iterator[Database]:
    yield from _database(postgres, postgres.dsn)


def pipeline(tmp_path: Path, kafka: KafkaCluster, source: str, sink: str, index: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        f"""
log:
  backend: kafka
  partitions: 4
  kafka: {{bootstrap: "{kafka.bootstrap}"}}
api: {{enabled: false}}
sources:
  - name: {source}
    type: postgres
    dsn: ${{PG_DSN}}
    tables: [public.orders]
    heartbeat_interval: 1s
sinks:
  - name: {sink}
    type: opensearch
    topics: ["{source}.*"]
    hosts: ["${{SEARCH_URL}}"]
    index: "{index}"
    flush_interval: 200ms
"""
    )
    return path


def assigned(hub: Hub, group: str) -> bool:
    return re.search(rf"group {re.escape(group)}: assigned \S", hub.text()) is not None


def test_killing_the_hub_that_runs_the_source_moves_source_and_partitions_to_the_other(
    db: Database, opensearch: OpenSearchServer, kafka: KafkaCluster, tmp_path: Path
) -> None:
    source, sink = unique("shop").replace("-", "_"), unique("search")
    index = f"{sink}-orders"
    client = opensearchpy.OpenSearch([opensearch.url])
    db.execute(SCHEMA)
    insert_orders(db, range(1, 201))
    config = pipeline(tmp_path, kafka, source, sink, index)
    env = {"PG_DSN": db.dsn, "SEARCH_URL": opensearch.url}
    try:
        with Hub("a", config, tmp_path / "a", env) as a, Hub("b", config, tmp_path / "b", env) as b:
            wait_until(lambda: a.says(LEASE) + b.says(LEASE) > 0, "one hub to take the source")
            holder, other = (a, b) if a.says(LEASE) else (b, a)
            # both share the sink: each was given some of the four partitions
            wait_until(lambda: assigned(a, sink) and assigned(b, sink), "both hubs in the group")
            wait_until(lambda: len(documents(client, index)) >= 200, "the snapshot in the index")
            assert other.says(LEASE) == 0
            with workload(db, seed=8):
                wait_until(lambda: len(documents(client, index)) > 210, "streamed changes")
                holder.check_alive()
                holder.kill()
                killed = time.monotonic()
                wait_until(lambda: other.says(LEASE) > 0, "the other hub to take the source")
                takeover = time.monotonic() - killed
                seen = len(documents(client, index))
                wait_until(lambda: len(documents(client, index)) != seen, "changes after it")
            expected = expected_orders(db)

            def converged() -> bool:
                return {k: normalised(v) for k, v in documents(client, index).items()} == expected

            wait_until(converged, "the index to equal the table")
            other.check_alive()
            assert other.stop() == 0, other.text()[-4000:]
        # the source moved within the session timeout (6 s) and a rebalance, with room for
        # a loaded machine
        assert takeover < 45, takeover
        print(f"the source was taken over {takeover:.1f} s after the kill")
        got = {k: normalised(v) for k, v in documents(client, index).items()}
        assert sorted(got) == sorted(expected)
        assert got == expected
    finally:
        client.indices.delete(index=f"{sink}*", ignore_unavailable=True)
        client.close()
