"""The shapes the REST API answers with; they are its OpenAPI schema."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from hub.state import ConnectorState

__all__ = [
    "ActionResult",
    "Connector",
    "Edge",
    "Lag",
    "Offsets",
    "PartitionOffsets",
    "Problem",
    "Progress",
    "Status",
    "Topic",
    "TopicPartitionInfo",
]

StateName = Literal[
    "STARTING", "RUNNING", "SNAPSHOTTING", "PAUSED", "STANDBY", "RETRYING", "FAILED",
    "STOPPED",
]
assert set(get_args(StateName)) == {s.value for s in ConnectorState}  # kept in step


class Problem(BaseModel):
    """An error answer: what was wrong and what to do."""

    detail: str


class Progress(BaseModel):
    """Long work in progress (a snapshot, an export)."""

    what: str
    done: int
    total: int | None = Field(description="units in all, when known")


class Lag(BaseModel):
    """How far a sink is behind the log: records not yet committed, age of the oldest one."""

    records: int
    seconds: float


class Connector(BaseModel):
    name: str
    kind: Literal["source", "sink"]
    type: str
    state: StateName = Field(
        description="STANDBY (Kafka scale-out): another hub process holds this connector's "
        "lease and runs it; this one takes over when that one stops or dies"
    )
    error: str | None = Field(description="why it FAILED or is RETRYING")
    since: float = Field(description="when it entered its state (Unix seconds)")
    records: int = Field(description="records moved since the worker (re)started")
    records_per_second: float
    retries: int
    dead_letters: int
    progress: Progress | None
    lag: Lag | None = Field(description="sinks: behind the log")
    upstream_lag_bytes: float | None = Field(
        description="sources: changes in the database not yet read (Postgres: slot lag)"
    )
    topics: list[str] = Field(description="sources: topics written; sinks: topics read")
    checkpoint: dict[str, Any] | None = Field(description="sources: last durable checkpoint")
    config: dict[str, Any] = Field(description="the connector's settings, secrets masked")


class ActionResult(BaseModel):
    name: str
    action: str
    state: StateName
    message: str


class PartitionOffsets(BaseModel):
    topic: str
    partition: int
    committed: int | None = Field(description="next offset the sink reads; null: none yet")
    start: int
    end: int
    lag: int


class Offsets(BaseModel):
    name: str
    kind: Literal["source", "sink"]
    partitions: list[PartitionOffsets] = Field(description="sinks: per partition read")
    checkpoint: dict[str, Any] | None = Field(description="sources: last durable checkpoint")


class TopicPartitionInfo(BaseModel):
    partition: int
    start: int
    end: int
    size_bytes: int


class Topic(BaseModel):
    name: str
    cleanup: Literal["delete", "compact"]
    records: int = Field(description="records held: end minus start offsets")
    size_bytes: int
    partitions: list[TopicPartitionInfo]


class Edge(BaseModel):
    """One arrow of the pipeline graph: a source writes a topic, or a sink reads one."""

    source: str
    target: str


class Status(BaseModel):
    """Everything the status page draws, in one answer."""

    pipeline: str
    time: float
    memory_bytes: int
    connectors: list[Connector]
    topics: list[Topic]
    edges: list[Edge]
