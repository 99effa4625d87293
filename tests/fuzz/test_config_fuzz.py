"""Fuzzed pipeline files: whatever the bytes, loading ends in a typed, readable error.

Random mutations of the example pipelines in configs/ and random YAML documents must either
validate or raise :class:`hub.errors.UsageError` (a :class:`ConfigError` for a file) whose
every line names the file — never another exception, never a hang. Hostile YAML (alias
bombs, deep nesting, Python tags) is refused quickly, and the CLI turns all of it into exit
code 2 without a traceback.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.config import PipelineConfig, load_pipeline
from hub.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "configs").glob("*.yaml"))
ENV = {
    "PG_DSN": "postgresql://app:secret@127.0.0.1:5432/shop",
    "MYSQL_URL": "mysql://app:secret@127.0.0.1:3306/shop",
    "MYSQL_DATABASE": "shop",
    "SEARCH_URL": "http://127.0.0.1:9200",
}
# Fragments that YAML and the models give meaning to: the mutations splice them in.
TOKENS = [
    ":", "- ", "{", "}", "[", "]", "&a ", "*a", "<<: *a", "!!binary ", "!!python/name:os.system",
    "'", '"', "\t", "\n", "\n  ", "#", "---\n", "${", "${PG_DSN}", "${NOPE}", "$${", "~", "null",
    "true", "0x1F", "1e999", ".nan", "-.inf", "0755", "99999999999999999999999", "-1", "0",
    "7d", "1ms", "10 GiB", "\x00", "\ufeff", "é", "ünïcødé", "type: postgres",
    "type: nope", "backend: kafka", "listen: 0.0.0.0:1", "name: x",
]


def check(path: Path) -> None:
    """Load ``path``: a config, or a UsageError whose problems each name the file."""
    try:
        config = load_pipeline(path, env=ENV)
    except UsageError as e:
        text = str(e)
        assert text.strip(), "an error without a message"
        for line in getattr(e, "problems", [text]):
            assert line.startswith(str(path)), f"problem does not name the file: {line!r}"
        return
    assert isinstance(config, PipelineConfig)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    text = draw(st.sampled_from(EXAMPLES)).read_text()
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "token", "dup_line", "swap"]))
        if op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif op == "insert":
            text = text[:at] + draw(st.text(max_size=8)) + text[at:]
        elif op == "token":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        elif op == "dup_line":
            lines = text.splitlines(keepends=True)
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                lines.insert(i, lines[i])
                text = "".join(lines)
        else:
            other = draw(st.integers(0, len(text)))
            a, b = sorted((at, other))
            text = text[:a] + text[b:] + text[a:b]
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()) and raw:  # now and then, bytes that are not UTF-8 at all
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0x80, 0xFF))]) + raw[i + 1 :]
    return raw


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(TOKENS),
)
keys = st.one_of(
    st.sampled_from(["log", "sources", "sinks", "api", "topics", "name", "type", "path",
                     "backend", "dsn", "tables", "hosts", "url", "listen", "token", "retention",
                     "errors", "tolerance", "topics", "partitions", "enabled"]),
    st.text(max_size=10),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)
typed_documents = st.fixed_dictionaries(
    {},
    optional={
        "log": st.dictionaries(keys, documents, max_size=4),
        "sources": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=8), "type": st.sampled_from(
                    ["postgres", "mysql", "mariadb", "sql_poll", "nope"])},
                optional={"dsn": scalars, "tables": documents, "url": scalars},
            ),
            max_size=2,
        ),
        "sinks": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=8), "type": st.sampled_from(
                    ["elasticsearch", "opensearch", "sql", "batch", "nope"])},
                optional={"topics": documents, "hosts": documents, "url": scalars},
            ),
            max_size=2,
        ),
        "api": st.dictionaries(st.sampled_from(["listen", "token", "enabled"]), scalars),
    },
)

FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(raw=mutated())
def test_a_mutated_example_validates_or_names_what_is_wrong(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_bytes(raw)
    check(path)


@FUZZ
@given(doc=st.one_of(documents, typed_documents))
def test_a_random_document_validates_or_names_what_is_wrong(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    check(path)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_random_bytes_are_a_config_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_bytes(raw)
    check(path)


def _laughs(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"sources: [*a{levels - 1}]", ""])


HOSTILE = {
    # 9**8 = 43M values if expanded: PyYAML shares the nodes, building dicts would not.
    "alias_bomb": _laughs(8),
    "deep_flow_lists": "sources: " + "[" * 1500 + "]" * 1500 + "\n",
    "deep_flow_maps": "sources: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "deep_block_maps": "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
    "self_alias": "sources: &a [*a]\n",
    "python_tag": "sources: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
    "long_line": "log: {path: " + "x" * 500_000 + "}\n",
}


def test_hostile_yaml_is_refused_quickly(tmp_path: Path) -> None:
    for name, text in HOSTILE.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        started = time.monotonic()
        check(path)
        took = time.monotonic() - started
        assert took < 20, f"{name}: {took:.1f} s to refuse"  # was 10+ minutes for the bomb


def test_the_cli_reports_hostile_yaml_with_exit_code_2_and_no_traceback(tmp_path: Path) -> None:
    for name in ("alias_bomb", "deep_flow_lists", "python_tag"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(HOSTILE[name])
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli", "validate", str(path)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout, done.stderr
        assert str(path) in done.stderr + done.stdout
