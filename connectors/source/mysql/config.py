"""``MySqlSourceConfig``: the YAML keys of a ``type: mysql`` (or ``mariadb``) source.

.. code-block:: yaml

    sources:
      - name: shop
        type: mysql                       # or mariadb
        url: mysql://app:${MYSQL_PASSWORD}@localhost:3306/shop
        # or: host / port / user / password
        databases: [shop]                 # every table of these databases, new ones too
        tables: [crm.customers]           # and/or single db.table names
        server_id: 5401                   # unique among the server's replicas
        snapshot: initial                 # initial | never | always | initial_only
        snapshot_chunk_size: 10000
        heartbeat_interval: 10s
        max_batch_events: 10000
        reconnect_timeout: 5m             # then fail; the hub restarts the source
        signal_table: shop.changehub_signal  # incremental snapshots (`changehub snapshot`)
        tls: {ca: /etc/changehub/db-ca.pem}  # optional: see connectors/tls.py

Snapshot modes: ``initial`` reads the tables once, on the first start, then streams;
``never`` streams from the server's current position on the first start; ``always`` re-reads
the tables on every start, then streams from the checkpoint; ``initial_only`` reads the
tables once and stops there.

``tls`` (see :mod:`connectors.tls`) becomes an :class:`ssl.SSLContext` (chain and host name
checked; neither with ``verify: false``) that PyMySQL uses for every connection, the binlog
stream's included.
"""

from __future__ import annotations

import re
import ssl
import zlib
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator, model_validator

from connectors.api import SourceConfig
from connectors.tls import TlsConfig
from hub.units import ByteSize, DurationMs

__all__ = ["ConnectionSettings", "MySqlSourceConfig", "SnapshotMode"]

SnapshotMode = Literal["initial", "never", "always", "initial_only"]

# db.table, split at the first dot: the table may hold dots, spaces, quotes and any letters
# (connectors/topics.py makes the topic name valid), the database all but a dot; neither a
# backtick, nor space at either end (a slip in the YAML)
_TABLE = re.compile(r"^[^.\s`](?:[^.`]*[^.\s`])?\.[^\s`](?:[^`]*[^\s`])?$")


class ConnectionSettings(dict[str, object]):
    """PyMySQL keyword arguments (host, port, user, password, charset …)."""


class MySqlSourceConfig(SourceConfig):
    type: str = "mysql"
    url: str | None = Field(default=None, description="mysql://user:password@host:port/")
    host: str | None = None
    port: int = Field(default=3306, ge=1, le=65535)
    user: str | None = None
    password: str | None = None
    databases: list[str] = Field(default_factory=list, description="capture every table")
    tables: list[str] = Field(default_factory=list, description="db.table names to capture")
    server_id: int | None = Field(
        default=None, ge=1, le=2**32 - 1, description="default: derived from the name"
    )
    flavor: Literal["auto", "mariadb", "mysql"] = "auto"
    snapshot: SnapshotMode = "initial"
    snapshot_chunk_size: int = Field(default=10_000, ge=1)
    heartbeat_interval: DurationMs = Field(default=10_000, ge=100)
    max_batch_events: int = Field(default=10_000, ge=1)
    max_batch_bytes: ByteSize = Field(default=16 * 1024 * 1024, ge=1024)
    queue_events: int = Field(
        default=50_000, ge=1, description="decoded changes waiting for the log, at most"
    )
    reconnect_timeout: DurationMs = Field(default=300_000, ge=0)
    fast_decoder: bool = Field(
        default=True, description="decode common column types without mysql-replication"
    )
    connect_timeout: DurationMs = Field(default=10_000, ge=100)
    tls: TlsConfig | None = Field(
        default=None, description="require TLS, verifying the server (see connectors/tls.py)"
    )
    signal_table: str | None = Field(
        default=None,
        description="db.table for incremental snapshot requests and watermarks "
        "(default: changehub_signal in the first captured database); never captured",
    )

    @field_validator("signal_table")
    @classmethod
    def _signal_table_is_qualified(cls, table: str | None) -> str | None:
        if table is not None and not _TABLE.match(table):
            raise ValueError(f"{table!r} is not db.table (e.g. shop.changehub_signal)")
        return table

    @field_validator("tables")
    @classmethod
    def _tables_are_qualified(cls, tables: list[str]) -> list[str]:
        for t in tables:
            if not _TABLE.match(t):
                raise ValueError(f"{t!r} is not db.table (e.g. shop.orders)")
        return tables

    @model_validator(mode="after")
    def _something_to_capture(self) -> MySqlSourceConfig:
        if not self.databases and not self.tables:
            raise ValueError("name what to capture: `databases: [shop]` and/or `tables: [shop.x]`")
        if self.url is None and self.host is None:
            raise ValueError("give `url: mysql://user:password@host:port/` or `host`")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
                raise ValueError("url must start with mysql:// (mysql://user:password@host:port/)")
        return self

    def captures(self, db: str, table: str) -> bool:
        name = f"{db}.{table}"
        return (db in self.databases or name in self.tables) and name != self.signal

    @property
    def signal(self) -> str:
        """The signal table (db.table) of incremental snapshots."""
        if self.signal_table is not None:
            return self.signal_table
        db = self.databases[0] if self.databases else self.tables[0].split(".", 1)[0]
        return f"{db}.changehub_signal"

    @property
    def effective_server_id(self) -> int:
        """The replica id sent to the server; stable per source name when not configured."""
        if self.server_id is not None:
            return self.server_id
        return 1_000_000 + zlib.crc32(self.name.encode()) % 1_000_000_000

    def connection(self) -> ConnectionSettings:
        host, port, user, password = self.host, self.port, self.user, self.password
        if self.url is not None:
            parts = urlsplit(self.url)
            host = parts.hostname or host
            port = parts.port or port
            user = unquote(parts.username) if parts.username else user
            password = unquote(parts.password) if parts.password else password
        settings = ConnectionSettings(
            host=host or "localhost",
            port=port,
            user=user or "root",
            password=password or "",
            charset="utf8mb4",
            connect_timeout=max(1, self.connect_timeout // 1000),
        )
        if self.tls is not None:
            settings["ssl"] = _ssl_context(self.tls)
        return settings


def _ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """The context PyMySQL wraps its socket in. Built here, not from PyMySQL's ``ssl_*``
    arguments: without a CA those verify nothing (and never the host name)."""
    context = ssl.create_default_context(cafile=str(tls.ca) if tls.ca is not None else None)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert is not None and tls.key is not None:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    return context
