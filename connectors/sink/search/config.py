"""Configuration of the search sink (``type: elasticsearch`` or ``type: opensearch``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from connectors.api import SinkConfig, StrictModel
from connectors.sink.search.mapping import validate_index_template
from connectors.sink.search.transforms import validate_filter

__all__ = ["NestedConfig", "SearchSinkConfig", "TransformConfig"]

EngineName = Literal["elasticsearch", "opensearch"]


class TransformConfig(StrictModel):
    """Row transforms applied before a row becomes a document, in this order: filter (on the
    source columns), include/exclude, mask, rename."""

    filter: str | None = Field(
        default=None,
        description="keep rows matching a simple expression, e.g. "
        "\"status != 'draft' and total >= 10\" (comparisons, and/or/not, in [...], "
        "is null; no function calls)",
    )
    include: list[str] | None = Field(default=None, description="columns to keep (default all)")
    exclude: list[str] = Field(default_factory=list, description="columns to drop")
    mask: list[str] = Field(
        default_factory=list, description="columns whose value is replaced by '***'"
    )
    rename: dict[str, str] = Field(default_factory=dict, description="column -> field name")

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: str | None) -> str | None:
        return None if value is None else validate_filter(value)


class NestedConfig(StrictModel):
    """Rows of a related topic embedded in the parent's documents.

    ``many: true`` (one-to-many, e.g. an order's lines): the child rows whose ``foreign_key``
    column equals the parent's ``parent_key`` column become a list under ``field``.
    ``many: false`` (many-to-one, e.g. the order's customer): the child row whose
    ``foreign_key`` (usually its primary key) equals the parent's ``parent_key`` becomes an
    object under ``field``.
    """

    field: str = Field(description="name of the embedded field in the parent document")
    topic: str = Field(description="topic holding the related table's changes")
    parent_key: str = Field(description="column of the parent row")
    foreign_key: str = Field(description="column of the child row that matches parent_key")
    many: bool = True
    transforms: TransformConfig = TransformConfig()


class SearchSinkConfig(SinkConfig):
    """Keys of a search sink (plus the common sink keys: topics, errors, batching)."""

    type: EngineName
    # A flush waits for every bulk in flight, so the engine idles for about one bulk's time
    # per flush: flushing every 20,000 records rather than the hub's default 5,000 keeps the
    # bulks flowing four times longer between those gaps (flush_interval still bounds the
    # delay, and a quiet log is flushed at once).
    max_batch_records: int = Field(
        default=20_000, ge=1,
        description="records between flushes at most (a flush waits for the bulks in flight)",
    )
    hosts: list[str] = Field(min_length=1, description="engine URLs, e.g. http://localhost:9200")
    engine: Literal["auto", "elasticsearch", "opensearch"] | None = Field(
        default=None,
        description="which client to use; default: the sink's type; auto: ask the server",
    )
    username: str | None = None
    password: str | None = None
    verify_certs: bool = True
    ca_certs: str | None = None
    request_timeout_s: float = Field(default=30.0, gt=0)

    index: str = Field(
        default="{topic}",
        description="index per event: a template over {topic}, {source}, {schema}, {table} "
        "(lower-cased; characters indexes may not hold become _)",
    )
    alias: bool = Field(
        default=False,
        description="write through an alias named by `index`, pointing at a versioned index "
        "(<name>-v1, ...), so that `changehub reindex` can swap in a rebuilt one",
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="index settings for indexes the sink creates"
    )
    mappings: dict[str, Any] | None = Field(
        default=None,
        description="index mappings ({properties: ...}) for indexes the sink creates; "
        "default: inferred from the values of the index's first bulk (decimal strings such "
        "as Postgres numeric become double)",
    )
    infer_mappings: bool = True
    gc_deletes: str = Field(
        default="1h",
        description="index.gc_deletes for indexes the sink creates: how long the engine "
        "remembers a deleted document's version",
    )

    bulk_actions: int = Field(default=1000, ge=1, description="documents per bulk request")
    bulk_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, description="bytes per bulk")
    concurrency: int = Field(default=2, ge=1, le=32, description="bulk requests in flight")
    retry_timeout_s: float = Field(
        default=60.0,
        ge=0,
        description="how long a flush retries an unreachable or overloaded engine before "
        "handing the failure to the hub (which restarts the sink from committed offsets)",
    )

    truncate: Literal["recreate", "delete_by_query"] = Field(
        default="recreate",
        description="on a truncate event: drop and recreate the index, or delete the "
        "documents written before the truncate (needs version_field)",
    )
    version_field: str | None = Field(
        default=None,
        description="also store each document's version in this field (needed by "
        "truncate: delete_by_query)",
    )

    transforms: TransformConfig = TransformConfig()
    nested: list[NestedConfig] = Field(default_factory=list)

    @field_validator("index")
    @classmethod
    def _index(cls, value: str) -> str:
        return validate_index_template(value)

    @model_validator(mode="after")
    def _consistent(self) -> SearchSinkConfig:
        if self.truncate == "delete_by_query" and not self.version_field:
            raise ValueError(
                "truncate: delete_by_query needs version_field (e.g. version_field: "
                "changehub_version), so that a replayed truncate deletes only documents "
                "older than itself"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self

    @property
    def engine_name(self) -> Literal["auto", "elasticsearch", "opensearch"]:
        return self.engine or self.type
