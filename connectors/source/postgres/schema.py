"""Table schemas: how a captured table's tuples become rows, keys and topic names.

The streaming side learns a table's columns from pgoutput Relation messages (sent before
the first change of a table and again after every schema change, so added, dropped and
renamed columns apply from the next change on, without a restart); the snapshot side
learns them from the catalog. Both end in a :class:`TableSchema`.

The event key is chosen per table, in this order: ``key_columns`` from the config, the
primary key, the columns of a ``REPLICA IDENTITY USING INDEX`` index. A table with none of
these gets null keys if it has ``REPLICA IDENTITY FULL`` (so Postgres still sends whole old
rows for updates and deletes); otherwise it cannot be captured and the error says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from connectors.source.postgres.catalog import TableInfo
from connectors.source.postgres.pgoutput import (
    UNCHANGED,
    ColumnValue,
    JsonColumn,
    Relation,
    TupleData,
)
from connectors.source.postgres.types import Converter, TypeMap
from connectors.topics import topic_name  # not via envelope: keeps pydantic out of the worker
from hub.errors import SchemaError

__all__ = ["TableSchema", "choose_key"]

_OPTS = orjson.OPT_NON_STR_KEYS


def choose_key(
    qualified: str,
    columns: Sequence[str],
    *,
    configured: Sequence[str] | None,
    primary_key: Sequence[str],
    identity: str,
    identity_index: Sequence[str],
) -> tuple[str, ...] | None:
    """The key columns of a table, or None for a keyless REPLICA IDENTITY FULL table."""
    if configured:
        missing = [c for c in configured if c not in columns]
        if missing:
            raise SchemaError(
                f"key_columns for {qualified} names {', '.join(missing)}, not columns of the "
                f"table (it has {', '.join(columns)}): fix key_columns in the config"
            )
        if not primary_key and identity not in ("f", "i"):
            raise SchemaError(
                f"{qualified} has key_columns in the config but no primary key, and its "
                "replica identity is not FULL, so Postgres sends no old row for updates and "
                f"deletes: run ALTER TABLE {qualified} REPLICA IDENTITY FULL"
            )
        return tuple(configured)
    if primary_key:
        return tuple(primary_key)
    if identity == "i" and identity_index:
        return tuple(identity_index)
    if identity == "f":
        return None
    raise SchemaError(
        f"{qualified} has no primary key, so its changes have no key and Postgres sends no old "
        f"row for updates and deletes: add a primary key, or set key_columns for it in the "
        f"config and run ALTER TABLE {qualified} REPLICA IDENTITY FULL"
    )


class TableSchema:
    """One table's columns with their converters, its key, and its topic.

    ``row`` maps a pgoutput/COPY tuple to a dict of JSON-ready values; unchanged TOASTed
    values stay :data:`UNCHANGED` for the caller to fill.
    """

    __slots__ = (
        "columns",
        "converters",
        "identity",
        "json_columns",
        "key",
        "key_index",
        "oid",
        "schema",
        "single_key",
        "source_head",
        "table",
        "topic",
        "type_oids",
    )

    def __init__(
        self,
        *,
        source_name: str,
        db: str,
        oid: int,
        schema: str,
        table: str,
        columns: Sequence[str],
        type_oids: Sequence[int],
        key: Sequence[str] | None,
        identity: str,
        types: TypeMap,
    ) -> None:
        self.oid = oid
        self.schema = schema
        self.table = table
        self.columns = tuple(columns)
        self.type_oids = tuple(type_oids)
        self.converters: tuple[Converter, ...] = tuple(types.converters(type_oids))
        prefixes = [orjson.dumps(c) + b":" for c in self.columns]
        self.json_columns: tuple[JsonColumn, ...] = tuple(
            (p, j, p + b"null")
            for p, j in zip(prefixes, types.json_converters(type_oids), strict=True)
        )
        self.key = None if key is None else tuple(key)
        self.key_index = None if key is None else tuple(self.columns.index(k) for k in key)
        # The one key column's index, for the hot path's shortcut; None otherwise.
        self.single_key = self.key_index[0] if self.key_index and len(self.key_index) == 1 else None
        self.identity = identity
        self.topic = topic_name(source_name, schema, table)
        # The constant part of the envelope's "source" block, up to the event's LSN.
        self.source_head = (
            b'{"connector":"postgres","name":'
            + orjson.dumps(source_name)
            + b',"db":'
            + orjson.dumps(db)
            + b',"schema":'
            + orjson.dumps(schema)
            + b',"table":'
            + orjson.dumps(table)
            + b',"lsn":'
        )

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    @classmethod
    def from_relation(
        cls,
        relation: Relation,
        *,
        source_name: str,
        db: str,
        types: TypeMap,
        key_for: Callable[[Relation], Sequence[str] | None],
    ) -> TableSchema:
        schema = relation.namespace or "pg_catalog"
        return cls(
            source_name=source_name,
            db=db,
            oid=relation.oid,
            schema=schema,
            table=relation.name,
            columns=[c.name for c in relation.columns],
            type_oids=[c.type_oid for c in relation.columns],
            key=key_for(relation),
            identity=relation.replica_identity,
            types=types,
        )

    @classmethod
    def from_catalog(
        cls,
        info: TableInfo,
        *,
        source_name: str,
        db: str,
        types: TypeMap,
        key: Sequence[str] | None,
    ) -> TableSchema:
        return cls(
            source_name=source_name,
            db=db,
            oid=info.oid,
            schema=info.schema,
            table=info.name,
            columns=info.columns,
            type_oids=info.type_oids,
            key=key,
            identity=info.identity,
            types=types,
        )

    def row(self, values: Sequence[ColumnValue]) -> dict[str, Any]:
        if len(values) != len(self.columns):
            raise SchemaError(
                f"a change of {self.qualified} has {len(values)} columns, its schema "
                f"{len(self.columns)} ({', '.join(self.columns)})"
            )
        try:
            return {
                name: conv(v) if v.__class__ is bytes else (None if v is None else UNCHANGED)
                for name, conv, v in zip(self.columns, self.converters, values, strict=False)
            }
        except (ValueError, IndexError, TypeError) as exc:
            raise self._conversion_error(values, exc) from None

    def _conversion_error(self, values: Sequence[ColumnValue], exc: Exception) -> SchemaError:
        for name, conv, oid, v in zip(
            self.columns, self.converters, self.type_oids, values, strict=False
        ):
            if v.__class__ is bytes:
                try:
                    conv(v)
                except (ValueError, IndexError, TypeError) as inner:
                    return SchemaError(
                        f"cannot map column {name} (type OID {oid}) of {self.qualified}: "
                        f"{inner}; value starts {bytes(v[:40])!r}"
                    )
        return SchemaError(f"cannot map a row of {self.qualified}: {exc}")

    def row_json(self, parts: list[bytes]) -> bytes:
        """The row's JSON object from :func:`pgoutput.tuple_json`'s members."""
        return b"{%b}" % b",".join(parts)

    def key_json(self, parts: list[bytes]) -> bytes | None:
        """The event key from a row's JSON members: equal to :meth:`key_of` of the row."""
        index = self.key_index
        if index is None:
            return None
        if len(index) == 1:
            return b"{%b}" % parts[index[0]]
        return b"{%b}" % b",".join([parts[i] for i in index])

    def key_of(self, row: Mapping[str, Any]) -> bytes | None:
        """The event key: the key columns as a JSON object in key order (None: keyless)."""
        key = self.key
        if key is None:
            return None
        return orjson.dumps({c: row[c] for c in key}, option=_OPTS)

    def key_from_tuple(self, values: TupleData) -> dict[str, Any]:
        """Just the key columns of an old-key tuple (REPLICA IDENTITY DEFAULT/INDEX)."""
        assert self.key_index is not None
        out: dict[str, Any] = {}
        for name, i in zip(self.key or (), self.key_index, strict=True):
            v = values[i]
            out[name] = self.converters[i](v) if isinstance(v, bytes) else None
        return out
