"""Configuration of the ``sql_poll`` source (Kafka Connect's JDBC source, for changehub)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from connectors.api import SourceConfig
from connectors.sqldb import split_table_name, validate_url
from hub.units import DurationMs

__all__ = ["Mode", "SqlPollConfig"]

Mode = Literal["incrementing", "timestamp", "timestamp+incrementing"]


class SqlPollConfig(SourceConfig):
    """Keys of a ``type: sql_poll`` source.

    ``mode`` says how new rows are found, as in Kafka Connect's JDBC source:

    * ``incrementing``: rows whose ``incrementing_column`` (an integer that only grows, e.g.
      an auto-increment id) is above the last one seen. Sees inserts only.
    * ``timestamp``: rows whose ``timestamp_column`` is after the last one seen. Sees
      inserts and updates, provided every write sets the timestamp.
    * ``timestamp+incrementing``: both, ordered by (timestamp, id): the robust choice when
      several rows share a timestamp.

    In the timestamp modes only rows with a timestamp before the database's current time
    minus ``lag`` are read, so that a transaction that commits late with an older timestamp
    is not skipped; naive timestamp columns are taken to hold UTC.
    """

    type: Literal["sql_poll"] = "sql_poll"
    url: str = Field(description="SQLAlchemy URL of the database to poll")
    table: str = Field(
        min_length=1,
        description="table to poll, optionally schema-qualified (schema.table); with `query` "
        "it names the topic and gives the default key (its primary key)",
    )
    mode: Mode
    incrementing_column: str | None = None
    timestamp_column: str | None = None
    interval: DurationMs = Field(default=5000, ge=1, description="time between polls")
    lag: DurationMs = Field(
        default=0, ge=0, description="timestamp modes: only read rows older than now - lag"
    )
    query: str | None = Field(
        default=None, description="custom SELECT to poll instead of the table (a subquery)"
    )
    key_columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="columns of the event key (default: the table's primary key, else the "
        "incrementing column)",
    )
    batch_size: int = Field(default=1000, ge=1, description="rows per query page")
    topic: str | None = Field(
        default=None, description="topic to write (default: <source name>.<schema>.<table>)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return validate_url(value)

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        # The query becomes a subquery, where a trailing semicolon is a syntax error.
        if value is None:
            return None
        value = value.strip().rstrip(";").strip()
        if not value:
            raise ValueError("query is empty: give a SELECT, or remove the key")
        return value

    @model_validator(mode="after")
    def _cursor_columns_for_mode(self) -> SqlPollConfig:
        if "incrementing" in self.mode and not self.incrementing_column:
            raise ValueError(f"mode {self.mode!r} needs incrementing_column (e.g. id)")
        if "timestamp" in self.mode and not self.timestamp_column:
            raise ValueError(f"mode {self.mode!r} needs timestamp_column (e.g. updated_at)")
        if self.mode == "incrementing" and self.timestamp_column:
            raise ValueError(
                "timestamp_column is only used in the timestamp modes: remove it, or use "
                "mode: timestamp+incrementing"
            )
        if self.mode == "timestamp" and self.incrementing_column:
            raise ValueError(
                "incrementing_column is only used with mode incrementing or "
                "timestamp+incrementing: remove it, or change the mode"
            )
        if self.mode == "incrementing" and self.lag:
            raise ValueError("lag only applies to the timestamp modes: remove it")
        return self

    @property
    def schema_name(self) -> str | None:
        return split_table_name(self.table)[0]

    @property
    def table_name(self) -> str:
        return split_table_name(self.table)[1]
