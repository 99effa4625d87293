"""Configuration of the ``sql`` sink (a warehouse or any SQL database, through SQLAlchemy)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from connectors.api import SinkConfig
from connectors.sink.sql.naming import validate_template
from connectors.sqldb import validate_url

__all__ = ["SqlSinkConfig"]


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

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return validate_url(value)

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return validate_template(value)
