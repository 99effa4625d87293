"""Configuration of the ``batch`` sink (files named by offset range, listed in a manifest).

With ``schedule`` the sink does not run continuously: the hub runs one export per cron fire
time (:mod:`hub.schedule`), and ``changehub export SINK`` runs one on demand
(:mod:`connectors.sink.batch.export`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, field_validator, model_validator

from connectors.api import SinkConfig

__all__ = ["BatchSinkConfig", "Format", "Shape"]

Format = Literal["jsonl", "parquet", "csv"]
Shape = Literal["changes", "latest"]


class BatchSinkConfig(SinkConfig):
    """Keys of a ``type: batch`` sink (plus the common sink keys: topics, errors, batching)."""

    type: Literal["batch"] = "batch"
    path: Path = Field(description="directory the files and the manifest are written to")
    format: Format = Field(default="jsonl", description="jsonl, parquet or csv")
    schedule: str | None = Field(
        default=None,
        description='cron expression ("0 2 * * *"): export on this schedule instead of '
        "continuously",
    )
    timezone: str = Field(
        default="UTC", description="time zone of the schedule and of the dt= directories"
    )
    shape: Shape = Field(
        default="changes",
        description="scheduled exports: changes (every change) or latest (state per key)",
    )
    misfire: Literal["catch_up", "skip"] = Field(
        default="catch_up",
        description="a fire time missed while the hub was down: run it at start, or skip it",
    )
    max_file_records: int = Field(
        default=100_000, ge=1,
        description="scheduled exports: records per file at most (bounds the memory of a run)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as UTC or Europe/Paris"
            ) from None
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronTrigger.from_crontab(value)
            except ValueError as exc:
                raise ValueError(
                    f"schedule {value!r} is not a cron expression ({exc}); expected five "
                    'fields: minute hour day month weekday, e.g. "0 2 * * *"'
                ) from None
        return value

    @model_validator(mode="after")
    def _scheduled_only_keys(self) -> BatchSinkConfig:
        if self.schedule is None and self.shape != "changes":
            raise ValueError(
                'shape: latest is for scheduled exports: add schedule: (e.g. "0 2 * * *"), '
                "or remove shape"
            )
        return self

    def trigger(self) -> CronTrigger:
        """The schedule as an APScheduler trigger in the configured time zone."""
        if self.schedule is None:
            raise ValueError(f"batch sink {self.name!r} has no schedule")
        return CronTrigger.from_crontab(self.schedule, timezone=ZoneInfo(self.timezone))
