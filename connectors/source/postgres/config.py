"""``PostgresSourceConfig``: the YAML keys of a ``type: postgres`` source.

.. code-block:: yaml

    sources:
      - name: shop
        type: postgres
        dsn: postgresql://app:${PGPASSWORD}@localhost/shop
        tables: [public.orders, public.customers]
        snapshot: initial            # initial | never | always | initial_only
        slot_name: changehub_shop    # default: changehub_<name>
        publication: changehub_shop  # default: changehub_<name>
        key_columns: {public.events: [tenant, seq]}   # for tables without a primary key
        heartbeat_interval: 10s
        heartbeat_action: message    # none | message: write to WAL when the database idles
        snapshot_chunk_size: 10000
        max_batch_events: 10000
        max_lag_bytes: 10GB          # optional: drop the slot and fail past this lag
        toast: log                   # log | fail
        receive_timeout: 60s         # silence on the replication stream that means a dead link
        tls: {ca: /etc/changehub/pg-ca.pem}   # optional: see connectors/tls.py

Snapshot modes: ``initial`` reads the tables once, on the first start, then streams;
``never`` only streams, from the slot's position; ``always`` re-reads the tables on every
start, then streams from the checkpoint; ``initial_only`` reads the tables once and stops
there (no slot).

``toast`` says what to do when an update leaves a large (TOASTed) value unchanged and
Postgres, under the default REPLICA IDENTITY, does not send it: ``log`` fills it from the
row's previous image in the log; ``fail`` stops with an error saying to set REPLICA IDENTITY
FULL. Under REPLICA IDENTITY FULL the old row comes with the change and fills it either way.

``tls`` (see :mod:`connectors.tls`) is folded into ``dsn`` as libpq parameters, so every
connection the source opens (catalog, snapshot, replication, doctor) uses it: ``sslmode``
``verify-full`` (``require`` with ``verify: false``), ``sslrootcert``, ``sslcert``,
``sslkey``. Without ``tls`` the DSN's own ``sslmode`` applies (libpq's default, ``prefer``,
encrypts when the server offers it but checks nothing).
"""

from __future__ import annotations

import re
from typing import Literal

from psycopg.conninfo import make_conninfo
from pydantic import Field, field_validator, model_validator

from connectors.api import SourceConfig
from connectors.tls import TlsConfig
from hub.units import ByteSize, DurationMs

__all__ = ["PostgresSourceConfig", "SnapshotMode", "TableName"]

SnapshotMode = Literal["initial", "never", "always", "initial_only"]

# schema.table, split at the first dot: the table may hold dots, spaces, quotes and any
# letters (connectors/topics.py makes the topic name valid), the schema all but a dot;
# neither has space at either end (a slip in the YAML, more likely)
_TABLE = re.compile(r"^[^.\s](?:[^.]*[^.\s])?\.[^\s](?:.*[^\s])?$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class TableName(str):
    """``schema.table`` as written in the config (unquoted, case as stored in the catalog)."""

    __slots__ = ()

    @property
    def schema(self) -> str:
        return self.split(".", 1)[0]

    @property
    def table(self) -> str:
        return self.split(".", 1)[1]


def _default_identifier(source_name: str) -> str:
    """``changehub_<name>`` folded into a valid slot/publication name."""
    return ("changehub_" + re.sub(r"[^a-z0-9_]", "_", source_name.lower()))[:63]


class PostgresSourceConfig(SourceConfig):
    type: str = "postgres"
    dsn: str = Field(description="libpq connection string or postgresql:// URL")
    tables: list[str] = Field(min_length=1, description="schema.table names to capture")
    snapshot: SnapshotMode = "initial"
    slot_name: str | None = Field(default=None, description="default: changehub_<name>")
    publication: str | None = Field(default=None, description="default: changehub_<name>")
    key_columns: dict[str, list[str]] = Field(
        default_factory=dict, description="key columns per schema.table without a primary key"
    )
    heartbeat_interval: DurationMs = Field(default=10_000, ge=100)
    heartbeat_action: Literal["none", "message"] = "message"
    snapshot_chunk_size: int = Field(default=10_000, ge=1)
    max_batch_events: int = Field(default=10_000, ge=1)
    max_batch_bytes: ByteSize = Field(default=16 * 1024 * 1024, ge=1024)
    max_lag_bytes: ByteSize | None = Field(default=None, ge=1)
    toast: Literal["log", "fail"] = "log"
    status_interval: DurationMs = Field(default=10_000, ge=100)
    receive_timeout: DurationMs = Field(
        default=60_000,
        ge=1_000,
        description="the replication connection counts as dead (the source reconnects) after "
        "this long without a message from Postgres; a keepalive is asked for at half of it",
    )
    tls: TlsConfig | None = Field(
        default=None, description="require TLS, verifying the server (see connectors/tls.py)"
    )

    @field_validator("tables")
    @classmethod
    def _tables_are_qualified(cls, tables: list[str]) -> list[str]:
        for t in tables:
            if not _TABLE.match(t):
                raise ValueError(
                    f"{t!r} is not schema.table (e.g. public.orders, or public.my.table for "
                    "a table named my.table: the first dot ends the schema)"
                )
        if len(set(tables)) != len(tables):
            raise ValueError("a table is listed twice")
        return tables

    @field_validator("slot_name", "publication")
    @classmethod
    def _valid_identifier(cls, name: str | None) -> str | None:
        if name is not None and not _IDENTIFIER.match(name):
            raise ValueError(
                f"{name!r} is not a valid name: use lower-case letters, digits and _, "
                "at most 63 characters, not starting with a digit"
            )
        return name

    @model_validator(mode="after")
    def _tls_into_dsn(self) -> PostgresSourceConfig:
        tls = self.tls
        if tls is None:
            return self
        params = {"sslmode": "verify-full" if tls.verify else "require"}
        for key, path in (("sslrootcert", tls.ca), ("sslcert", tls.cert), ("sslkey", tls.key)):
            if path is not None:
                params[key] = str(path.absolute())
        try:
            dsn = make_conninfo(self.dsn, **params)
        except Exception as exc:  # psycopg.ProgrammingError: the DSN does not parse
            raise ValueError(f"dsn cannot take the tls settings: {type(exc).__name__}") from None
        object.__setattr__(self, "dsn", dsn)  # frozen model: set once, while validating
        return self

    @model_validator(mode="after")
    def _key_columns_name_listed_tables(self) -> PostgresSourceConfig:
        for table, columns in self.key_columns.items():
            if table not in self.tables:
                raise ValueError(f"key_columns names {table!r}, which is not in tables")
            if not columns:
                raise ValueError(f"key_columns for {table!r} is empty")
        return self

    @property
    def table_names(self) -> list[TableName]:
        return [TableName(t) for t in self.tables]

    @property
    def slot(self) -> str:
        return self.slot_name or _default_identifier(self.name)

    @property
    def publication_name(self) -> str:
        return self.publication or _default_identifier(self.name)
