"""Pipeline files: the typed models a YAML pipeline becomes, and :func:`load_pipeline`.

One YAML file declares one pipeline: where the log lives, per-topic settings, the sources
that write into the log and the sinks that read from it, and the management API::

    log:
      backend: embedded            # embedded | kafka
      path: ./data/log             # relative paths resolve against the working directory
      retention: 7d                # default topic retention, or "forever"
      retention_bytes: 10GB        # optional, per partition
      partitions: 1                # partitions of new topics
      durability: batch            # batch | interval | never
      flush_interval: 100ms        # for durability: interval
      segment_bytes: 128MB
    topics:                        # optional overrides by topic name or glob; first match wins
      "shop.public.orders": {partitions: 3, cleanup: compact, retention: 30d}
    sources:
      - {name: shop, type: postgres, dsn: "postgresql://app:${PGPASSWORD}@localhost/shop"}
    sinks:
      - {name: search, type: elasticsearch, topics: ["shop.*"], hosts: ["http://localhost:9200"]}
    api: {listen: "127.0.0.1:8083", token: "${CHANGEHUB_TOKEN}"}

Every key but the connectors' own has a default; the smallest pipeline is one source or
sink. Durations are written ``500ms``, ``5s``, ``10m``, ``2h``, ``7d``, ``1w``; sizes
``512KB``, ``64MB``, ``10GB`` (binary: 1KB = 1024 bytes); a bare number is milliseconds or
bytes. ``${VAR}`` and ``${VAR:-default}`` in any string value are filled from the
environment before validation (``$${`` writes a literal ``${``). Each entry of ``sources``
and ``sinks`` is validated by the config model of its ``type`` (see the connector's docs);
names must be unique across sources and sinks.

Nothing starts before the whole file is valid. A :class:`~hub.errors.ConfigError` lists
every problem at once, one line each, as ``file:line:column: key.path: what is wrong``, with
the bad value (secrets masked) and what was expected. Secrets (URL/DSN passwords, values of
keys named like *password*, *token*, *secret*) are registered with :mod:`hub.secrets` at
load, so they are masked in every log line afterwards; :meth:`PipelineConfig.redacted` is the
form to print or serve.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import ipaddress
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from connectors.api import SinkConfig, SourceConfig, StrictModel
from connectors.registry import Kind, available, load_sink, load_source
from hub.errors import ConfigError, UsageError
from hub.secrets import MASK, is_secret_key, mask, redact, register_secret, secrets_in
from hub.units import ByteSize, DurationMs
from hub.yaml_source import KeyPath, Problem, YamlDocument, format_key_path, load_yaml
from log.api import DAY_MS, Durability, TopicConfig

__all__ = [
    "ApiConfig",
    "ConfigPath",
    "KafkaLogConfig",
    "LogConfig",
    "PipelineConfig",
    "Resolver",
    "TopicGlob",
    "TopicOverride",
    "check_topic_glob",
    "load_pipeline",
    "registry_resolver",
]

Resolver = Callable[[Kind, str], type[BaseModel]]
"""Finds the config model of a connector type: ``(kind, type_name) -> model``."""


# -- value types --------------------------------------------------------------------------


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    return value if value.is_absolute() or base is None else Path(base) / value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A file system path; relative paths resolve against the directory changehub is started
from, like the relative paths inside database URLs (``sqlite:///./legacy.db``), so one rule
holds for every path in a file. Resolved once at load, so a later chdir changes nothing.

Connector models use it too: the loader passes ``{"base_dir": <the working directory>}`` as
validation context.
"""


_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._\-]")
_MAX_TOPIC = 249  # Kafka's limit; the embedded log keeps the same rule so that pipelines port


def check_topic_glob(text: str) -> str | None:
    """Why ``text`` is not a topic name or glob, or None when it is one.

    Names use letters, digits, ``.``, ``_`` and ``-`` (as Kafka's); globs add ``*`` (any
    run), ``?`` (one character) and classes ``[abc]``, ``[a-z]``, ``[!x]`` (fnmatch).
    """
    if not text:
        return "empty topic name"
    if len(text) > _MAX_TOPIC:
        return f"longer than {_MAX_TOPIC} characters"
    i = 0
    while i < len(text):
        c = text[i]
        if c == "[":
            end = text.find("]", i + 1)
            if end == -1:
                return f"'[' at position {i + 1} is never closed by ']'"
            body = text[i + 1 : end].removeprefix("!")
            if not body:
                return f"empty character class at position {i + 1}"
            bad = [ch for ch in body if ch != "-" and not _TOPIC_CHARS.match(ch)]
            if bad:
                return f"{bad[0]!r} cannot appear in a character class"
            i = end + 1
            continue
        if c == "]":
            return f"']' at position {i + 1} without '['"
        if c not in "*?" and not _TOPIC_CHARS.match(c):
            hint = "; list each topic instead of {a,b}" if c in "{}," else ""
            return (
                f"{c!r} cannot appear in a topic name (letters, digits, '.', '_', '-') "
                f"or glob ('*', '?', '[...]'){hint}"
            )
        i += 1
    return None


def _topic_glob(value: str) -> str:
    problem = check_topic_glob(value)
    if problem:
        raise ValueError(f"{value!r} is not a topic name or glob: {problem}")
    return value


TopicGlob = Annotated[str, AfterValidator(_topic_glob)]
"""A topic name or an fnmatch glob of topic names (``shop.*``, ``shop.public.order?``)."""


def _forever(value: Any) -> Any:
    return None if value == "forever" else value


Retention = Annotated[DurationMs | None, BeforeValidator(_forever)]


# -- log ------------------------------------------------------------------------------------


class KafkaLogConfig(StrictModel):
    """``log.kafka``: the Kafka-protocol cluster (Apache Kafka, Redpanda) holding the log.

    Only with ``log.backend: kafka``. Example::

        kafka:
          bootstrap: "broker1:9092,broker2:9092"
          replication_factor: 3
          min_insync_replicas: 2
          config: {security.protocol: SASL_SSL, sasl.mechanism: PLAIN,
                   sasl.username: hub, sasl.password: "${KAFKA_PASSWORD}"}
    """

    bootstrap: str = Field(description="brokers to start from: host:port, comma-separated")
    replication_factor: int = Field(
        default=1, ge=1, description="copies of each partition of new topics (3 in production)"
    )
    min_insync_replicas: int = Field(
        default=1, ge=1, description="copies that must have a write before it is acknowledged"
    )
    config: dict[str, str | bool | int] = Field(
        default_factory=dict,
        description="extra librdkafka client properties (security.protocol, sasl.* …)",
    )

    @field_validator("bootstrap")
    @classmethod
    def _hosts_with_ports(cls, value: str) -> str:
        for part in value.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not (sep and host and port.isdigit()):
                raise ValueError(
                    f"{part.strip()!r} is not host:port; write e.g. 'kafka1:9092,kafka2:9092'"
                )
        return value

    @field_validator("min_insync_replicas")
    @classmethod
    def _not_above_replication(cls, value: int, info: ValidationInfo) -> int:
        factor = info.data.get("replication_factor")
        if factor is not None and value > factor:
            raise ValueError(
                f"{value} is more than replication_factor ({factor}): no write could ever be "
                "acknowledged; lower min_insync_replicas or raise replication_factor"
            )
        return value


class TopicOverride(StrictModel):
    """One entry of ``topics:``: settings for the topics whose name matches the key.

    The key is a topic name or glob; for each topic the first matching entry wins, and the
    keys it sets override the defaults from ``log:``. Example::

        topics:
          "shop.public.orders": {partitions: 3}
          "shop.*": {cleanup: compact, retention: forever, delete_retention: 1d}
    """

    partitions: int | None = Field(default=None, ge=1, description="partitions of new topics")
    cleanup: Literal["delete", "compact"] | None = Field(
        default=None,
        description="delete: drop old segments by retention; compact: keep the latest per key",
    )
    retention: Retention = Field(default=None, description='how long to keep records, or "forever"')
    retention_bytes: ByteSize | None = Field(
        default=None, ge=1, description="size limit per partition (null: none)"
    )
    segment_bytes: ByteSize | None = Field(default=None, ge=1, description="roll segments at")
    delete_retention: DurationMs | None = Field(
        default=None, ge=0, description="how long compaction keeps tombstones"
    )
    min_compaction_lag: DurationMs | None = Field(
        default=None, ge=0, description="records younger than this are not compacted"
    )
    replication_factor: int | None = Field(default=None, ge=1, description="kafka backend")
    min_insync_replicas: int | None = Field(default=None, ge=1, description="kafka backend")

    def apply(self, base: TopicConfig) -> TopicConfig:
        """``base`` with the keys written in this entry replaced (``forever`` included)."""
        renamed = {
            "retention": "retention_ms",
            "delete_retention": "delete_retention_ms",
            "min_compaction_lag": "min_compaction_lag_ms",
        }
        changes = {renamed.get(k, k): getattr(self, k) for k in self.model_fields_set}
        return dataclasses.replace(base, **changes)


class LogConfig(StrictModel):
    """``log:``: where the internal log lives and the defaults of new topics.

    Example::

        log: {backend: embedded, path: ./data/log, retention: 7d, durability: batch}

    ``durability`` says when an append is acknowledged: ``batch`` fsyncs before every append
    returns (the default; nothing acknowledged is lost on power loss), ``interval`` fsyncs
    every ``flush_interval``, ``never`` leaves it to the OS (survives kill -9, not power loss).
    """

    backend: Literal["embedded", "kafka"] = Field(
        default="embedded", description="embedded (files under path) or kafka (a cluster)"
    )
    path: ConfigPath = Field(
        default=Path("data/log"),
        validate_default=True,
        description="directory of the embedded log (relative: to the working directory)",
    )
    retention: Retention = Field(
        default=7 * DAY_MS, description='how long topics keep records, or "forever"'
    )
    retention_bytes: ByteSize | None = Field(
        default=None, ge=1, description="size limit per partition (default: none)"
    )
    partitions: int = Field(default=1, ge=1, description="partitions of new topics")
    durability_policy: Literal["batch", "interval", "never"] = Field(
        default="batch", alias="durability", description="batch | interval | never"
    )
    flush_interval: DurationMs = Field(
        default=100, ge=1, description="fsync period with durability: interval"
    )
    segment_bytes: ByteSize = Field(
        default=128 * 1024 * 1024, ge=1, description="roll to a new segment file at this size"
    )
    kafka: KafkaLogConfig | None = Field(
        default=None, validate_default=True, description="the cluster, for backend: kafka"
    )

    # The pipeline's ``topics:`` overrides; set by PipelineConfig (they live at the top level
    # of the file, but every caller that creates a topic holds the LogConfig).
    _topics: Mapping[str, TopicOverride] = PrivateAttr(default_factory=dict)

    @field_validator("kafka")
    @classmethod
    def _kafka_iff_backend(
        cls, value: KafkaLogConfig | None, info: ValidationInfo
    ) -> KafkaLogConfig | None:
        backend = info.data.get("backend")
        if backend == "kafka" and value is None:
            raise ValueError(
                "backend: kafka needs a log.kafka section, at least "
                "kafka: {bootstrap: 'host:9092'}"
            )
        if backend == "embedded" and value is not None:
            raise ValueError("log.kafka is only used with backend: kafka; remove it or set "
                             "backend: kafka")
        return value

    def durability(self) -> Durability:
        """When appends are acknowledged, as the log takes it."""
        return Durability(policy=self.durability_policy, interval_ms=self.flush_interval)

    def topic_config(self, name: str) -> TopicConfig:
        """Settings for topic ``name``: this section's defaults, then the first ``topics:``
        entry whose key matches ``name``."""
        base = TopicConfig(
            partitions=self.partitions,
            retention_ms=self.retention,
            retention_bytes=self.retention_bytes,
            segment_bytes=self.segment_bytes,
            replication_factor=self.kafka.replication_factor if self.kafka else 1,
            min_insync_replicas=self.kafka.min_insync_replicas if self.kafka else 1,
        )
        for pattern, override in self._topics.items():
            if fnmatch.fnmatchcase(name, pattern):
                return override.apply(base)
        return base


# -- api ------------------------------------------------------------------------------------


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


class ApiConfig(StrictModel):
    """``api:``: the management REST API, Prometheus metrics and status page.

    On by default on 127.0.0.1:8083. Binding any other address needs a token, sent by
    clients as ``Authorization: Bearer <token>``. Example::

        api: {listen: "0.0.0.0:8083", token: "${CHANGEHUB_TOKEN}"}
    """

    enabled: bool = Field(default=True, description="serve the API")
    listen: str = Field(
        default="127.0.0.1:8083",
        description="host:port to bind ([::1]:8083 for IPv6; port 0 picks a free one)",
    )
    token: Annotated[SecretStr | None, BeforeValidator(_empty_is_none)] = Field(
        default=None,
        validate_default=True,
        description="bearer token clients must send; required off loopback",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, port = _split_listen(value)
        if not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(
                f"{value!r} is not host:port; write e.g. '127.0.0.1:8083' or '[::1]:8083'"
            )
        return value

    @field_validator("token")
    @classmethod
    def _required_off_loopback(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        listen = info.data.get("listen")
        enabled = info.data.get("enabled", True)
        if value is None and enabled and listen and not is_loopback(_split_listen(listen)[0]):
            raise ValueError(
                f"a token is required when the API listens beyond loopback ({listen!r}): "
                'set api.token: "${CHANGEHUB_TOKEN}", or listen on 127.0.0.1'
            )
        return value

    @property
    def host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return int(_split_listen(self.listen)[1])


def _split_listen(listen: str) -> tuple[str, str]:
    host, _, port = listen.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the pipeline ---------------------------------------------------------------------------


class PipelineConfig(StrictModel):
    """A validated pipeline file. Build it with :func:`load_pipeline`.

    ``sources`` and ``sinks`` hold instances of each connector type's own config model.
    ``repr`` masks secrets; :meth:`redacted` is the form for display and API output.
    """

    path: Path = Field(description="the pipeline file (absolute)")
    log: LogConfig = Field(default_factory=LogConfig)
    topics: dict[TopicGlob, TopicOverride] = Field(default_factory=dict)
    sources: list[SerializeAsAny[SourceConfig]] = Field(default_factory=list)
    sinks: list[SerializeAsAny[SinkConfig]] = Field(default_factory=list)
    api: ApiConfig = Field(default_factory=ApiConfig)

    @model_validator(mode="after")
    def _wire_topic_overrides(self) -> PipelineConfig:
        self.log._topics = self.topics
        return self

    def redacted(self) -> dict[str, Any]:
        """The whole configuration as plain data with every secret replaced by ``***``."""
        data = self.model_dump(mode="json", by_alias=True)
        data["topics"] = {k: v.model_dump(mode="json", exclude_unset=True)
                          for k, v in self.topics.items()}
        out: dict[str, Any] = redact(data)
        return out

    def __repr__(self) -> str:
        return mask(super().__repr__())

    def __str__(self) -> str:
        return mask(super().__str__())


class _PipelineFile(StrictModel):
    """The top level of a file; connector entries stay raw until their type is known."""

    log: LogConfig = Field(default_factory=dict, validate_default=True)
    topics: dict[TopicGlob, TopicOverride] = Field(default_factory=dict)
    sources: list[dict[str, Any]] = Field(default_factory=list)
    sinks: list[dict[str, Any]] = Field(default_factory=list)
    api: ApiConfig = Field(default_factory=ApiConfig)


def registry_resolver(kind: Kind, type_name: str) -> type[BaseModel]:
    """The config model of an installed connector type (entry points, see connectors.registry)."""
    cls = load_source(type_name) if kind == "source" else load_sink(type_name)
    return cls.config_model


def load_pipeline(
    path: str | os.PathLike[str],
    env: Mapping[str, str] = os.environ,
    resolver: Resolver | None = None,
) -> PipelineConfig:
    """Read, interpolate and validate a pipeline file.

    ``env`` fills ``${VAR}`` references; ``resolver`` maps a connector type to its config
    model (default: the installed connectors). Raises :class:`ConfigError` listing every
    problem found; nothing is started or connected here.
    """
    file = Path(path)
    doc = load_yaml(file, env)
    _register_secrets(doc.data)
    loader = _Loader(doc, resolver, base_dir=Path.cwd())
    config = loader.validate(file.absolute())
    problems = _without_follow_ups(doc.problems, loader.problems)
    if problems or config is None:
        raise ConfigError([mask(str(p)) for p in sorted(problems, key=_order)])
    return config


def _order(p: Problem) -> tuple[int, int, str]:
    return (p.position.line, p.position.column, p.message)


def _without_follow_ups(first: list[Problem], later: list[Problem]) -> list[Problem]:
    """Drop validation problems caused by an earlier one (an unset variable left a value
    empty; a duplicate key's second value was dropped)."""
    bad = [p.path for p in first]
    kept = [p for p in later if not any(p.path[: len(b)] == b for b in bad)]
    return first + kept


def _register_secrets(data: Any, key: str = "") -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            _register_secrets(v, k)
    elif isinstance(data, list):
        for v in data:
            _register_secrets(v, key)
    elif isinstance(data, str):
        if is_secret_key(key):
            register_secret(data)
        for secret in secrets_in(data):
            register_secret(secret)


class _Loader:
    """Validates a :class:`YamlDocument` part by part, collecting problems with positions."""

    def __init__(self, doc: YamlDocument, resolver: Resolver | None, base_dir: Path) -> None:
        self.doc = doc
        self.resolver = resolver or registry_resolver
        self.list_installed = resolver is None
        self.context = {"base_dir": base_dir}
        self.problems: list[Problem] = []

    def validate(self, file: Path) -> PipelineConfig | None:
        data = self.doc.data
        top_keys = ", ".join(_PipelineFile.model_fields)
        if data is None:
            self.problems.append(self.doc.problem(
                (), f"the file is empty; a pipeline is a mapping with the keys {top_keys}"
            ))
            return None
        if not isinstance(data, dict):
            self.problems.append(self.doc.problem(
                (), f"expected a mapping with the keys {top_keys} (got {_show(data)})"
            ))
            return None
        top = self._model(_PipelineFile, data, ())
        sources = self._connectors("source", data.get("sources", []))
        sinks = self._connectors("sink", data.get("sinks", []))
        self._unique_names()
        if top is None or sources is None or sinks is None or self.problems:
            return None
        return PipelineConfig(
            path=file, log=top.log, topics=top.topics, sources=sources, sinks=sinks, api=top.api
        )

    def _model(self, model: type[_M], data: Any, at: KeyPath) -> _M | None:
        try:
            return model.model_validate(data, context=self.context)
        except ValidationError as e:
            self.problems.extend(_translate(self.doc, e, at, model))
            return None

    def _connectors(self, kind: Kind, entries: Any) -> list[Any] | None:
        """Validate each entry by its type's model; None if any entry is wrong."""
        section = f"{kind}s"
        if not isinstance(entries, list):
            return None  # reported by _PipelineFile: "expected a list"
        out: list[Any] = []
        for i, entry in enumerate(entries):
            at: KeyPath = (section, i)
            if not isinstance(entry, dict):
                continue  # reported by _PipelineFile: "expected a mapping"
            model = self._connector_model(kind, entry, at)
            if model is None:
                continue
            config = self._model(model, entry, at)
            if config is not None and kind == "sink":
                self._check_topic_globs(config, at)
            if config is not None:
                out.append(config)
        return out if len(out) == len(entries) else None

    def _connector_model(
        self, kind: Kind, entry: dict[str, Any], at: KeyPath
    ) -> type[BaseModel] | None:
        type_name = entry.get("type")
        installed = f" (installed: {', '.join(available(kind))})" if self.list_installed else ""
        if "type" not in entry:
            self.problems.append(self.doc.problem(
                at, f"required key 'type' is missing: which {kind} this is{installed}"
            ))
            return None
        if not isinstance(type_name, str):
            self.problems.append(self.doc.problem(
                (*at, "type"), f"expected a {kind} type name (got {_show(type_name)}){installed}"
            ))
            return None
        base = SourceConfig if kind == "source" else SinkConfig
        try:
            model = self.resolver(kind, type_name)
        except UsageError as e:
            self.problems.append(self.doc.problem((*at, "type"), str(e)))
            return None
        except Exception as e:  # a broken third-party connector must not hide the other problems
            self.problems.append(self.doc.problem(
                (*at, "type"), f"{kind} type {type_name!r} failed to load: {type(e).__name__}: {e}"
            ))
            return None
        if not (isinstance(model, type) and issubclass(model, base)):
            self.problems.append(self.doc.problem(
                (*at, "type"),
                f"{kind} type {type_name!r} declares a config model that does not derive from "
                f"{base.__name__}; this is a bug in the connector",
            ))
            return None
        return model

    def _check_topic_globs(self, sink: Any, at: KeyPath) -> None:
        for j, topic in enumerate(sink.topics):
            problem = check_topic_glob(topic)
            if problem:
                self.problems.append(self.doc.problem(
                    (*at, "topics", j), f"{topic!r} is not a topic name or glob: {problem}"
                ))

    def _unique_names(self) -> None:
        """Names key checkpoints, offsets and API routes, so they must be unique."""
        seen: dict[str, KeyPath] = {}
        for section in ("sources", "sinks"):
            entries = self.doc.data.get(section)
            if not isinstance(entries, list):
                continue
            for i, entry in enumerate(entries):
                name = entry.get("name") if isinstance(entry, dict) else None
                if not isinstance(name, str):
                    continue
                here: KeyPath = (section, i, "name")
                if name in seen:
                    first = seen[name]
                    line = self.doc.position(first).line
                    self.problems.append(self.doc.problem(here, (
                        f"duplicate name {name!r}: {format_key_path(first[:2])} at line {line} "
                        f"has it too, again at line {self.doc.position(here).line}; names must "
                        "be unique across sources and sinks"
                    )))
                else:
                    seen[name] = here


_M = typing.TypeVar("_M", bound=BaseModel)


# -- pydantic errors -> problems with positions -----------------------------------------------


def _translate(
    doc: YamlDocument, error: ValidationError, at: KeyPath, model: type[BaseModel]
) -> list[Problem]:
    """One :class:`Problem` per bad place: union members' complaints about one value merge."""
    expected: dict[KeyPath, list[str]] = {}
    problems: list[Problem] = []
    for e in error.errors(include_url=False):
        path, on_key = _data_path(doc.data, at, e["loc"], model)
        if e["type"] == "missing" and path[-1:] != e["loc"][-1:]:
            path = (*path, e["loc"][-1])  # a key of a mapping no model walk could reach
        relative = path[len(at) :]
        if on_key:
            problems.append(doc.problem(path, _message(e, path[-1]), key=True))
        elif e["type"] == "missing":
            field = _field(model, relative)
            desc = f" ({field.description})" if field and field.description else ""
            mapping = doc.position(path[:-1])
            problems.append(Problem(doc.file, mapping, path, (
                f"required key {path[-1]!r} is missing from the mapping at line {mapping.line}"
                f"{desc}"
            )))
        elif e["type"] == "extra_forbidden":
            problems.append(doc.problem(path, _unknown_key(model, relative), key=True))
        else:
            expected.setdefault(path, []).append(_message(e, None))
    for path, messages in expected.items():
        value = _lookup(doc.data, path)
        text = _join_expected(messages)
        shown = _show(value, secret=_is_secret_path(path))
        if value is not _MISSING and shown not in text:
            text += f" (got {shown})"
        problems.append(doc.problem(path, text))
    return problems


_MISSING = object()


def _child(node: Any, part: str | int) -> Any:
    """``node[part]`` when ``part`` names a place in the data, else ``_MISSING``."""
    if isinstance(node, dict) and isinstance(part, str) and part in node:
        return node[part]
    if isinstance(node, list) and type(part) is int and 0 <= part < len(node):
        return node[part]
    return _MISSING


def _lookup(data: Any, path: KeyPath) -> Any:
    for part in path:
        data = _child(data, part)
        if data is _MISSING:
            break
    return data


def _data_path(
    data: Any, at: KeyPath, loc: tuple[int | str, ...], model: type[BaseModel]
) -> tuple[KeyPath, bool]:
    """Pydantic's ``loc`` as a path in the data, and whether the error is about a dict key.

    A part is kept when it is a place in the data or a field of the model there (a missing
    or defaulted key); other parts (a union member's tag, ``function-after[…]``) are not
    places and are skipped.
    """
    path: list[str | int] = list(at)
    node = _lookup(data, at)
    for part in loc:
        if part == "[key]":
            return tuple(path), True
        child = _child(node, part)
        if child is not _MISSING or _field(model, (*path[len(at) :], part)) is not None:
            node = child
            path.append(part)
    return tuple(path), False


def _unwrap(tp: Any) -> Any:
    """The model inside ``Annotated[...]``, ``X | None``, ``SerializeAsAny[X]``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            models = [a for a in typing.get_args(tp) if isinstance(a, type) and
                      issubclass(a, BaseModel)]
            if len(models) != 1:
                return tp
            tp = models[0]
        else:
            return tp


def _fields_by_key(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _model_at(model: type[BaseModel], path: KeyPath) -> type[BaseModel] | None:
    """The model that validates the mapping at ``path`` (relative to ``model``)."""
    tp: Any = model
    for part in path:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = _fields_by_key(tp).get(str(part))
            if info is None:
                return None
            tp = info.annotation
        elif origin in (list, tuple) and typing.get_args(tp):
            tp = typing.get_args(tp)[0]
        elif origin is dict and typing.get_args(tp):
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _field(model: type[BaseModel], path: KeyPath) -> FieldInfo | None:
    owner = _model_at(model, path[:-1]) if path else None
    return _fields_by_key(owner).get(str(path[-1])) if owner else None


def _unknown_key(model: type[BaseModel], path: KeyPath) -> str:
    key = str(path[-1])
    owner = _model_at(model, path[:-1])
    if owner is None:
        return f"unknown key {key!r}"
    known = list(_fields_by_key(owner))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}; expected one of: {', '.join(known)}"


_SHAPES = {
    "dict_type": "expected a mapping (key: value lines, or {key: value})",
    "model_type": "expected a mapping (key: value lines, or {key: value})",
    "model_attributes_type": "expected a mapping (key: value lines, or {key: value})",
    "list_type": "expected a list ('- item' lines, or [a, b])",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string (quote it if it looks like a number or true/false)",
}


def _message(e: Any, key: str | int | None) -> str:
    kind, msg = e["type"], str(e["msg"])
    if kind in ("value_error", "assertion_error"):
        return msg.split(", ", 1)[1] if ", " in msg else msg
    if kind in _SHAPES:
        return _SHAPES[kind]
    if kind == "string_pattern_mismatch":
        return f"expected a value matching {e['ctx']['pattern']}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return "expected a number " + msg.removeprefix("Input should be ")
    if msg.startswith("Input should be "):
        return "expected " + msg.removeprefix("Input should be ")
    if key is not None:
        return f"{msg} (key {key!r})"
    return msg[:1].lower() + msg[1:]


def _join_expected(messages: list[str]) -> str:
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    parts = [m.removeprefix("expected ") for m in unique]
    return "expected " + ", ".join(parts[:-1]) + " or " + parts[-1]


def _is_secret_path(path: KeyPath) -> bool:
    return any(isinstance(p, str) and is_secret_key(p) for p in path)


def _show(value: Any, *, secret: bool = False) -> str:
    """A value as the user wrote it, short, with secrets masked."""
    if secret and value not in (None, ""):
        return repr(MASK)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(mask(value)) if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:76] + "…" + text[-1]

