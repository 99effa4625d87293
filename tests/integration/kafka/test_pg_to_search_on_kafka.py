"""The Postgres -> search end-to-end test (tests/integration/search/test_pipeline.py) on the
Kafka backend: configs/pg-to-search.yaml with its log section switched to ``backend: kafka``
and the same steps and checks (snapshot, streamed inserts, updates, deletes, a truncate, and
``changehub reindex``), against OpenSearch."""

from __future__ import annotations

import re
from pathlib import Path

import opensearchpy
import pytest

from tests.fixtures.services import KafkaCluster
from tests.integration.kafka.conftest import unique
from tests.integration.postgres.pipeline import Database
from tests.integration.search import test_pipeline as e2e
from tests.integration.search.test_pipeline import db, search  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def kafka_config(kafka: KafkaCluster, directory: Path) -> Path:
    """configs/pg-to-search.yaml on the Kafka cluster, with a source name of its own (the
    cluster, and its checkpoint topic, are shared by the whole test session)."""
    text = e2e.CONFIG.read_text()
    text = re.sub(
        r"^log:\n(  .*\n)+",
        f"log:\n  backend: kafka\n  kafka: {{bootstrap: '{kafka.bootstrap}'}}\n",
        text,
        count=1,
        flags=re.M,
    )
    source = unique("shop").replace("-", "_")
    text = text.replace("name: shop", f"name: {source}").replace('"shop.*"', f'"{source}.*"')
    assert "backend: kafka" in text and source in text
    path = directory / "pg-to-search-on-kafka.yaml"
    path.write_text(text)
    return path


# one engine is enough here: the engines' differences are the embedded-log test's business
@pytest.mark.parametrize("search", ["opensearch"], indirect=True)
def test_pg_to_search_on_kafka_mirrors_inserts_updates_deletes_and_truncates(
    db: Database,  # noqa: F811 - the fixture imported above
    search: tuple[str, opensearchpy.OpenSearch],  # noqa: F811
    kafka: KafkaCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(e2e, "CONFIG", kafka_config(kafka, tmp_path))
    e2e.test_pg_to_search_config_mirrors_inserts_updates_deletes_and_truncates(db, search, tmp_path)
