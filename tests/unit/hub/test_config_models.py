"""The config models on their own, and the YAML reader under them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.config import ApiConfig, LogConfig, PipelineConfig, TopicOverride, check_topic_glob
from hub.yaml_source import Position, format_key_path, interpolate, load_yaml
from log.api import DAY_MS, TopicConfig

# -- log ------------------------------------------------------------------------------------


def test_topic_config_uses_the_log_defaults_without_overrides() -> None:
    log = LogConfig.model_validate(
        {"retention": "2d", "retention_bytes": "1GB", "partitions": 2, "segment_bytes": "1MB"}
    )
    assert log.topic_config("any") == TopicConfig(
        partitions=2, retention_ms=2 * DAY_MS, retention_bytes=1024**3, segment_bytes=1024**2
    )


def test_forever_retention_is_none_and_an_override_can_set_forever() -> None:
    config = PipelineConfig.model_validate({
        "path": "/p.yaml",
        "log": {"retention": "forever"},
        "topics": {"keep.*": {"retention": "forever"}, "short.*": {"retention": "1h"}},
    })
    assert config.log.retention is None
    assert config.log.topic_config("keep.x").retention_ms is None
    assert config.log.topic_config("short.x").retention_ms == 3_600_000


def test_an_override_changes_only_the_keys_it_sets() -> None:
    base = TopicConfig(partitions=4, retention_ms=DAY_MS)
    changed = TopicOverride.model_validate({"cleanup": "compact", "min_compaction_lag": "1m"})
    assert changed.apply(base) == TopicConfig(
        partitions=4, retention_ms=DAY_MS, cleanup="compact", min_compaction_lag_ms=60_000
    )


def test_durability_maps_policy_and_interval() -> None:
    log = LogConfig.model_validate({"durability": "interval", "flush_interval": "1s"})
    assert (log.durability().policy, log.durability().interval_ms) == ("interval", 1000)
    assert LogConfig().durability().policy == "batch"


def test_kafka_section_is_rejected_with_the_embedded_backend() -> None:
    with pytest.raises(ValidationError, match="only used with backend: kafka"):
        LogConfig.model_validate({"kafka": {"bootstrap": "k:9092"}})


def test_log_path_without_a_pipeline_file_stays_relative() -> None:
    assert LogConfig().path == Path("data/log")


# -- topic globs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "glob", ["shop.public.orders", "shop.*", "*", "shop.public.order?", "db[0-9].t", "a[!x]_-b"]
)
def test_valid_topic_names_and_globs(glob: str) -> None:
    assert check_topic_glob(glob) is None


@pytest.mark.parametrize(
    ("glob", "why"),
    [
        ("", "empty topic name"),
        ("shop.[orders", "'[' at position 6 is never closed by ']'"),
        ("shop]", "']' at position 5 without '['"),
        ("a[]b", "empty character class at position 2"),
        ("a[b/]", "'/' cannot appear in a character class"),
        ("shop orders", "' ' cannot appear in a topic name"),
        ("s{a,b}", "list each topic instead of {a,b}"),
        ("x" * 250, "longer than 249 characters"),
    ],
)
def test_invalid_topic_globs_say_why(glob: str, why: str) -> None:
    problem = check_topic_glob(glob)
    assert problem is not None
    assert why in problem


# -- api ------------------------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["127.0.0.1:8083", "127.0.0.9:1", "localhost:80", "[::1]:0"])
def test_loopback_listen_needs_no_token(listen: str) -> None:
    assert ApiConfig.model_validate({"listen": listen}).token is None


@pytest.mark.parametrize("listen", ["0.0.0.0:8083", "[::]:8083", "10.0.0.5:80", "hub.lan:8083"])
def test_listen_beyond_loopback_needs_a_token(listen: str) -> None:
    with pytest.raises(ValidationError, match="a token is required"):
        ApiConfig.model_validate({"listen": listen})
    with pytest.raises(ValidationError, match="a token is required"):
        ApiConfig.model_validate({"listen": listen, "token": ""})
    api = ApiConfig.model_validate({"listen": listen, "token": "t0ken"})
    assert api.token is not None
    assert api.token.get_secret_value() == "t0ken"


def test_disabled_api_needs_no_token() -> None:
    assert not ApiConfig.model_validate({"listen": "0.0.0.0:8083", "enabled": False}).enabled


def test_listen_host_and_port() -> None:
    api = ApiConfig.model_validate({"listen": "[::1]:9000"})
    assert (api.host, api.port) == ("::1", 9000)


@pytest.mark.parametrize("listen", ["localhost", "127.0.0.1:", ":8083", "127.0.0.1:70000"])
def test_listen_must_be_host_and_port(listen: str) -> None:
    with pytest.raises(ValidationError, match="is not host:port"):
        ApiConfig.model_validate({"listen": listen})


def test_token_is_hidden_in_repr_and_dump() -> None:
    api = ApiConfig.model_validate({"token": "tok-very-secret"})
    assert "tok-very-secret" not in repr(api)
    assert "tok-very-secret" not in str(api.model_dump(mode="json"))


# -- the YAML reader ------------------------------------------------------------------------


def test_interpolate_fills_defaults_and_escapes() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("${A}-${B:-2}-${EMPTY:-3}-$${A}-$5-$A", env) == ("1-2-3-${A}-$5-$A", [])


def test_interpolate_reports_unset_malformed_and_unclosed_references() -> None:
    text, errors = interpolate("x${MISSING}y ${9X} ${OPEN", {})
    assert text == "xy  ${OPEN"
    assert [offset for offset, _ in errors] == [1, 13, 19]
    assert "environment variable MISSING is not set" in errors[0][1]
    assert "'${9X}' is not a variable reference" in errors[1][1]
    assert "is never closed" in errors[2][1]


def test_set_but_empty_variable_without_default_is_empty() -> None:
    assert interpolate("a${EMPTY}b", {"EMPTY": ""}) == ("ab", [])


def test_scalars_follow_the_yaml_1_2_core_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "a: no\nb: on\nc: true\nd: 0755\ne: 0x1F\nf: 1.10\ng: 2024-01-31\nh: 1:30\n"
        "i: ~\nj: 12\nk: -3\nl: 1e3\nm: False\n"
    )
    data = load_yaml(path, {}).data
    assert data == {
        "a": "no", "b": "on", "c": True, "d": "0755", "e": 31, "f": 1.1, "g": "2024-01-31",
        "h": "1:30", "i": None, "j": 12, "k": -3, "l": 1000.0, "m": False,
    }


def test_positions_of_keys_and_values_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("sources:\n  - name: a\n    tables: [x, y]\n")
    doc = load_yaml(path, {})
    assert doc.keys[("sources", 0, "tables")] == Position(3, 5)
    assert doc.values[("sources", 0, "tables", 1)] == Position(3, 17)
    assert doc.position(("sources", 0, "not_there")) == Position(2, 5)


def test_merge_keys_work_and_explicit_keys_override_them(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "base: &base {type: sql, url: 'sqlite://', topics: [a]}\n"
        "sinks:\n  - <<: *base\n    name: one\n    url: 'duckdb://'\n"
    )
    doc = load_yaml(path, {})
    assert doc.problems == []
    assert doc.data["sinks"][0] == {
        "type": "sql", "url": "duckdb://", "topics": ["a"], "name": "one"
    }


def test_duplicate_keys_are_problems_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("a: 1\nb: 2\na: 3\n")
    doc = load_yaml(path, {})
    assert doc.data == {"a": 1, "b": 2}
    assert [str(p) for p in doc.problems] == [
        f"{path}:3:1: a: duplicate key 'a': first written at line 1, again at line 3; keep one"
    ]


def test_an_alias_to_its_own_parent_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("a: &x\n  b: *x\n")
    doc = load_yaml(path, {})
    assert "an alias refers to its own parent" in str(doc.problems[0])


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("sources", 0, "interval"), "sources[0].interval"),
        (("topics", "shop.public.orders", "partitions"), 'topics["shop.public.orders"].partitions'),
        (("log", "kafka", "config", "linger.ms"), 'log.kafka.config["linger.ms"]'),
        ((), "(top level)"),
    ],
)
def test_key_paths_read_like_code(path: tuple[str | int, ...], text: str) -> None:
    assert format_key_path(path) == text
