from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.registry import load_source
from connectors.source.postgres.config import PostgresSourceConfig
from connectors.source.postgres.source import PostgresSource


def make(**values: object) -> PostgresSourceConfig:
    base: dict[str, object] = {
        "name": "shop",
        "type": "postgres",
        "dsn": "postgresql://x/y",
        "tables": ["public.orders"],
    }
    base.update(values)
    return PostgresSourceConfig.model_validate(base)


def test_defaults_follow_the_source_name() -> None:
    c = make(name="Shop-EU.1")
    assert c.slot == "changehub_shop_eu_1" and c.publication_name == "changehub_shop_eu_1"
    assert c.snapshot == "initial" and c.heartbeat_interval == 10_000 and c.toast == "log"


def test_durations_and_sizes_are_parsed() -> None:
    c = make(heartbeat_interval="2s", max_lag_bytes="10GB")
    assert c.heartbeat_interval == 2000 and c.max_lag_bytes == 10 * 1024**3


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"tables": ["orders"]}, "schema.table"),
        ({"tables": []}, "at least 1"),
        ({"tables": ["public.a", "public.a"]}, "twice"),
        ({"snapshot": "sometimes"}, "initial"),
        ({"slot_name": "Bad-Name"}, "valid name"),
        ({"key_columns": {"public.other": ["id"]}}, "not in tables"),
        ({"key_columns": {"public.orders": []}}, "empty"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_bad_configs_say_what_is_expected(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        make(**values)


def test_the_entry_point_finds_the_source() -> None:
    assert load_source("postgres") is PostgresSource
    assert PostgresSource.config_model is PostgresSourceConfig
