"""Loading pipeline files: valid ones into typed models, malformed ones into precise problems.

Connector types are stood in for by small models of our own (the real connectors register
through entry points and have their own tests); a type we do not stand in for goes to the
real registry, which is how an unknown type is reported.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from connectors.api import SinkConfig, SourceConfig
from connectors.registry import Kind
from hub.config import ConfigPath, PipelineConfig, load_pipeline, registry_resolver
from hub.errors import ConfigError
from hub.secrets import SecretFilter, forget_secrets, mask
from hub.units import DurationMs
from log.api import DAY_MS, Durability

BAD_CONFIGS = Path(__file__).resolve().parents[2] / "data" / "bad_configs"


class PostgresStandIn(SourceConfig):
    dsn: str = Field(description="postgres connection URL")
    tables: list[str] = Field(min_length=1)
    snapshot: Literal["initial", "never", "always"] = "initial"


class SqlPollStandIn(SourceConfig):
    url: str
    table: str
    mode: Literal["incrementing", "timestamp", "timestamp+incrementing"]
    incrementing_column: str | None = None
    interval: DurationMs = 5000


class ElasticsearchStandIn(SinkConfig):
    hosts: list[str]
    password: str | None = None


class SqlStandIn(SinkConfig):
    url: str
    table: str = "{schema}_{table}"


class BatchStandIn(SinkConfig):
    schedule: str
    format: Literal["jsonl", "parquet"]
    path: ConfigPath


STAND_INS: dict[tuple[str, str], type[BaseModel]] = {
    ("source", "postgres"): PostgresStandIn,
    ("source", "sql_poll"): SqlPollStandIn,
    ("sink", "elasticsearch"): ElasticsearchStandIn,
    ("sink", "sql"): SqlStandIn,
    ("sink", "batch"): BatchStandIn,
}


def stand_ins(kind: Kind, type_name: str) -> type[BaseModel]:
    return STAND_INS.get((kind, type_name)) or registry_resolver(kind, type_name)


@pytest.fixture(autouse=True)
def _clean_secret_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def write(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_pipeline(path, env=env or {}, resolver=stand_ins)
    return info.value.problems


# The example of ../shared/DESIGN.md ("Configuration"), exactly as written there.
DESIGN_EXAMPLE = """\
log: {backend: embedded, path: ./data/log, retention: 7d}
sources:
  - name: shop
    type: postgres
    dsn: postgresql://app:${PGPASSWORD}@localhost/shop
    tables: [public.orders, public.customers]
    snapshot: initial
  - name: legacy                  # a passive system, polled
    type: sql_poll
    url: sqlite:///./legacy.db    # any SQLAlchemy URL
    table: orders
    mode: incrementing            # incrementing | timestamp | timestamp+incrementing
    incrementing_column: id
    interval: 5s
sinks:
  - name: search
    type: elasticsearch
    topics: [shop.public.orders]
    hosts: [http://localhost:9200]
  - name: warehouse
    type: sql
    topics: ["shop.*"]
    url: duckdb:///./data/warehouse.duckdb     # any SQLAlchemy URL
    table: "{schema}_{table}"
  - name: nightly
    type: batch
    topics: ["shop.*"]
    schedule: "0 2 * * *"
    format: parquet
    path: ./exports
"""


# -- valid files ------------------------------------------------------------------------------


def test_design_example_validates_into_each_connectors_own_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, DESIGN_EXAMPLE)
    config = load_pipeline(path, env={"PGPASSWORD": "pg-pass-1"}, resolver=stand_ins)

    assert config.path == path.absolute()
    assert config.log.backend == "embedded"
    assert config.log.path == tmp_path / "data" / "log"
    assert config.log.retention == 7 * DAY_MS
    shop, legacy = config.sources
    assert isinstance(shop, PostgresStandIn)
    assert shop.dsn == "postgresql://app:pg-pass-1@localhost/shop"
    assert shop.tables == ["public.orders", "public.customers"]
    assert isinstance(legacy, SqlPollStandIn)
    assert legacy.interval == 5000
    assert [type(s) for s in config.sinks] == [ElasticsearchStandIn, SqlStandIn, BatchStandIn]
    search, warehouse, nightly = config.sinks
    assert search.topics == ["shop.public.orders"]
    assert isinstance(warehouse, SqlStandIn)
    assert warehouse.table == "{schema}_{table}"
    assert isinstance(nightly, BatchStandIn)
    assert nightly.path == tmp_path / "exports"


def test_everything_but_the_connectors_has_a_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "sinks: [{name: wh, type: sql, topics: [a], url: 'sqlite://'}]\n")
    config = load_pipeline(path, env={}, resolver=stand_ins)

    assert config.log.path == tmp_path / "data" / "log"
    assert config.log.durability() == Durability("batch", 100)
    assert config.log.topic_config("a").partitions == 1
    assert config.log.topic_config("a").retention_ms == 7 * DAY_MS
    assert config.log.kafka is None
    assert config.topics == {}
    assert config.sources == []
    assert (config.api.enabled, config.api.host, config.api.port) == (True, "127.0.0.1", 8083)
    assert config.api.token is None


def test_the_full_log_section_reaches_topic_configs_and_durability(tmp_path: Path) -> None:
    path = write(tmp_path, """
log:
  backend: embedded
  path: /var/lib/changehub/log
  retention: forever
  retention_bytes: 10GB
  partitions: 4
  durability: interval
  flush_interval: 250ms
  segment_bytes: 64MB
topics:
  "shop.public.orders": {partitions: 3, cleanup: compact, retention: 30d, delete_retention: 1d}
  "shop.*": {retention_bytes: 1GB}
""")
    log = load_pipeline(path, env={}, resolver=stand_ins).log

    assert log.path == Path("/var/lib/changehub/log")
    assert log.durability() == Durability("interval", 250)
    orders = log.topic_config("shop.public.orders")
    assert (orders.partitions, orders.cleanup, orders.retention_ms) == (3, "compact", 30 * DAY_MS)
    assert orders.retention_bytes == 10 * 1024**3  # the first match wins; "shop.*" not applied
    assert orders.delete_retention_ms == DAY_MS
    customers = log.topic_config("shop.public.customers")
    assert (customers.partitions, customers.retention_bytes) == (4, 1024**3)
    assert customers.retention_ms is None  # "forever", from log:
    assert log.topic_config("other").segment_bytes == 64 * 1024**2


def test_kafka_backend_carries_replication_into_topic_configs(tmp_path: Path) -> None:
    path = write(tmp_path, """
log:
  backend: kafka
  kafka:
    bootstrap: "k1:9092,k2:9092"
    replication_factor: 3
    min_insync_replicas: 2
    config: {security.protocol: SASL_SSL, linger.ms: 5, enable.idempotence: true}
topics: {"audit.*": {replication_factor: 5}}
""")
    log = load_pipeline(path, env={}, resolver=stand_ins).log

    assert log.kafka is not None
    assert log.kafka.config == {"security.protocol": "SASL_SSL", "linger.ms": 5,
                                "enable.idempotence": True}
    tc = log.topic_config("shop.public.orders")
    assert (tc.replication_factor, tc.min_insync_replicas) == (3, 2)
    assert log.topic_config("audit.log").replication_factor == 5


def test_env_values_defaults_and_escapes_are_filled_before_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, """
log:
  partitions: ${PARTS:-3}
  retention: ${RETENTION:-7d}
  path: ${EMPTY:-./fallback}
api:
  listen: "${HOST}:8083"
  token: "$${NOT_A_VAR}-${TOKEN}"
""")
    config = load_pipeline(
        path, env={"RETENTION": "2d", "EMPTY": "", "HOST": "0.0.0.0", "TOKEN": "tok-123"},
        resolver=stand_ins,
    )

    assert config.log.partitions == 3  # the default, a string until validated as an int
    assert config.log.retention == 2 * DAY_MS  # the variable wins over the default
    assert config.log.path == tmp_path / "fallback"  # set but empty: the default applies
    assert config.api.listen == "0.0.0.0:8083"
    assert config.api.token is not None
    assert config.api.token.get_secret_value() == "${NOT_A_VAR}-tok-123"


def test_relative_paths_resolve_against_the_working_directory_like_database_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", DESIGN_EXAMPLE)
    monkeypatch.chdir(tmp_path)

    config = load_pipeline("conf/pipeline.yaml", env={"PGPASSWORD": "x"}, resolver=stand_ins)

    assert config.log.path == tmp_path / "data" / "log"
    assert config.sinks[2].path == tmp_path / "exports"  # type: ignore[attr-defined]
    assert config.path == path


def test_secrets_read_from_the_file_are_masked_everywhere_afterwards(tmp_path: Path) -> None:
    path = write(tmp_path, DESIGN_EXAMPLE + "api: {token: '${CHANGEHUB_TOKEN}'}\n")
    env = {"PGPASSWORD": "pg-Secret-77", "CHANGEHUB_TOKEN": "api-Token-88"}
    config = load_pipeline(path, env=env, resolver=stand_ins)

    # A driver echoing the bare password, or a log line with the token, shows neither.
    assert mask('password authentication failed for "pg-Secret-77"') == (
        'password authentication failed for "***"'
    )
    assert "api-Token-88" not in mask("client sent api-Token-88")
    for shown in (repr(config), str(config), str(config.redacted())):
        assert "pg-Secret-77" not in shown
        assert "api-Token-88" not in shown


def test_redacted_is_plain_data_with_secrets_replaced(tmp_path: Path) -> None:
    path = write(tmp_path, DESIGN_EXAMPLE.replace("hosts: [http://localhost:9200]",
                                                  "hosts: [http://localhost:9200]\n"
                                                  "    password: es-pass-99")
                 + 'api: {token: "tok-tok-tok"}\ntopics: {"shop.*": {partitions: 2}}\n')
    data = load_pipeline(path, env={"PGPASSWORD": "pg-pass-1"}, resolver=stand_ins).redacted()

    assert data["sources"][0]["dsn"] == "postgresql://app:***@localhost/shop"
    assert data["sinks"][0]["password"] == "***"
    assert data["api"]["token"] == "***"
    assert data["log"]["durability"] == "batch"
    assert data["topics"] == {"shop.*": {"partitions": 2}}  # only what the file set
    assert data["sinks"][2]["format"] == "parquet"  # the connector's own fields are kept


def test_log_filter_masks_a_secret_loaded_from_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, DESIGN_EXAMPLE)
    load_pipeline(path, env={"PGPASSWORD": "pg-Secret-77"}, resolver=stand_ins)
    logger = logging.getLogger("test.config.secrets")
    caplog.handler.addFilter(SecretFilter())

    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("connecting with %s", "pg-Secret-77")

    assert caplog.records[0].getMessage() == "connecting with ***"


def test_connector_names_must_be_unique_across_sources_and_sinks(tmp_path: Path) -> None:
    path = write(tmp_path, DESIGN_EXAMPLE.replace("name: nightly", "name: legacy"))
    problems = problems_of(path, {"PGPASSWORD": "x"})

    assert len(problems) == 1
    assert re.search(r":25:11: sinks\[2\]\.name: duplicate name 'legacy': sources\[1\] at line 8 "
                     r"has it too, again at line 25", problems[0])


def test_every_problem_in_a_file_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    path = write(tmp_path, """
log: {partitions: 0, durability: fast}
sources:
  - {name: a, type: sql_poll, url: x, table: t, mode: incrementing, interval: soon}
  - {name: b, type: postgres, tables: []}
sinks:
  - {name: c, type: sql, topics: ["a b"], url: x}
api: {listen: "127.0.0.1:99999"}
""")
    problems = problems_of(path)
    located = [re.match(rf"{re.escape(str(path))}:(\d+):(\d+): (\S+): ", p) for p in problems]

    assert all(located), problems
    assert [(int(m[1]), int(m[2]), m[3]) for m in located if m] == [
        (2, 19, "log.partitions"),
        (2, 34, "log.durability"),
        (4, 79, "sources[0].interval"),
        (5, 5, "sources[1].dsn"),
        (5, 39, "sources[1].tables"),
        (7, 35, "sinks[0].topics[0]"),
        (8, 15, "api.listen"),
    ]


def test_a_connector_model_that_is_not_a_source_config_is_reported(tmp_path: Path) -> None:
    class Loose(BaseModel):
        name: str

    path = write(tmp_path, "sources: [{name: a, type: loose}]\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline(path, env={}, resolver=lambda kind, name: Loose)

    assert info.value.problems == [
        f"{path}:1:27: sources[0].type: source type 'loose' declares a config model that does "
        "not derive from SourceConfig; this is a bug in the connector"
    ]


def test_a_connector_that_fails_to_import_does_not_hide_other_problems(tmp_path: Path) -> None:
    def broken(kind: Kind, name: str) -> type[BaseModel]:
        if name == "broken":
            raise ImportError("No module named 'vendor_lib'")
        return stand_ins(kind, name)

    path = write(tmp_path, "sources: [{name: a, type: broken}]\nlog: {partitions: x}\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline(path, env={}, resolver=broken)

    assert len(info.value.problems) == 2
    assert "sources[0].type: source type 'broken' failed to load: ImportError: No module " \
           "named 'vendor_lib'" in info.value.problems[0]
    assert "log.partitions: expected a whole number (got 'x')" in info.value.problems[1]


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the pipeline file: No such"):
        load_pipeline(tmp_path / "nope.yaml", env={}, resolver=stand_ins)


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("log: {path: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text .* save the file as UTF"):
        load_pipeline(path, env={}, resolver=stand_ins)


def test_pipeline_config_is_immutable(tmp_path: Path) -> None:
    config = load_pipeline(write(tmp_path, "log: {}\n"), env={}, resolver=stand_ins)
    with pytest.raises(ValueError, match="frozen"):
        config.log.partitions = 9


def test_pipeline_config_built_in_code_wires_topic_overrides(tmp_path: Path) -> None:
    config = PipelineConfig.model_validate(
        {"path": tmp_path / "p.yaml", "topics": {"a.*": {"partitions": 6}}}
    )
    assert config.log.topic_config("a.b").partitions == 6
    assert config.log.topic_config("b").partitions == 1


# -- malformed files (tests/data/bad_configs) ---------------------------------------------------


BAD_FILES = sorted(BAD_CONFIGS.glob("*.yaml"))


def _headers(path: Path, name: str) -> list[str]:
    prefix = f"# {name}:"
    return [
        line.removeprefix(prefix).strip()
        for line in path.read_text().splitlines()
        if line.startswith(prefix)
    ]


def test_there_are_at_least_fifteen_malformed_files_each_with_expectations() -> None:
    assert len(BAD_FILES) >= 15
    for path in BAD_FILES:
        assert _headers(path, "expect"), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_malformed_file_is_rejected_with_the_expected_located_messages(path: Path) -> None:
    env = dict(e.split("=", 1) for e in _headers(path, "env"))
    problems = problems_of(path, env)

    for fragment in _headers(path, "expect"):
        assert any(fragment in p for p in problems), f"{fragment!r} not in:\n" + "\n".join(
            problems
        )
    for secret in _headers(path, "forbid"):
        assert not any(secret in p for p in problems), problems
    # Every line names the file, line and column, then the key path (or the YAML complaint).
    located = re.compile(rf"{re.escape(str(path))}:\d+:\d+: (invalid YAML: |\(top level\): |\S+: )")
    for p in problems:
        assert located.match(p), p
