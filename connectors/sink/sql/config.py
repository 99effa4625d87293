"""Configuration of the ``sql`` sink (a warehouse or any SQL database, through SQLAlchemy)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from connectors.api import SinkConfig, StrictModel
from connectors.sink.sql.naming import validate_template
from connectors.sqldb import validate_url

__all__ = ["HistoryOptions", "SqlSinkConfig"]


class HistoryOptions(StrictModel):
    """Keys of ``history:`` (used with ``mode: history``)."""

    scd2: bool = Field(
        default=False,
        description="keep the table as a type-2 slowly changing dimension: each change "
        "closes the key's current row (_valid_to, _is_current = false) and opens a new one "
        "(_valid_from); a delete closes it",
    )


class SqlSinkConfig(SinkConfig):
    """Keys of a ``type: sql`` sink (plus the common sink keys: topics, errors, batching)."""

    type: Literal["sql"] = "sql"
    url: str = Field(description="SQLAlchemy URL of the target database")
    table: str = Field(
        default="{topic}",
        description="target table per event: a template over {topic}, {source}, {db}, "
        "{schema}, {table} (each sanitised to letters, digits and _); a literal dot makes "
        "a schema-qualified name, e.g. analytics.{table}",
    )
    mode: Literal["upsert", "history"] = Field(
        default="upsert",
        description="upsert: the table mirrors the source, one row per key; history: one "
        "row appended per change, with _op, _position, _ts and its log position",
    )
    history: HistoryOptions = Field(
        default=HistoryOptions(), description="options of mode: history"
    )

    @model_validator(mode="after")
    def _history_needs_history_mode(self) -> SqlSinkConfig:
        if self.history.scd2 and self.mode != "history":
            raise ValueError(
                "history.scd2 is an option of history tables: add `mode: history` to the sink "
                "(or drop `history:` to keep one row per key with mode: upsert)"
            )
        return self

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return validate_url(value)

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return validate_template(value)
