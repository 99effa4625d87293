"""Target tables that follow the events: created from the first events' columns, widened
with ``ALTER TABLE … ADD COLUMN`` when new columns appear.

Column types are inferred from the first non-null JSON value seen for the column:

=============  ==============================================================
JSON value     column type
=============  ==============================================================
true/false     BOOLEAN
integer        BIGINT (integers beyond 64 bits: TEXT)
number         DOUBLE PRECISION
string         TEXT (VARCHAR(255) for key columns on MySQL/MariaDB, which
               cannot index TEXT)
object, array  TEXT holding the JSON
=============  ==============================================================

Decimals, dates and timestamps arrive as strings in the envelope and are kept as text; a
table created beforehand with typed columns (NUMERIC, TIMESTAMP, JSON …) is used as it is,
strings being converted to those types on the way in. A column whose values are all null so
far is not created until a value arrives. Columns are never dropped or narrowed.

Each value is converted to its column's type when the record is written (:meth:`TableShape.fit`),
so a value that cannot fit (text into an integer column) is a
:class:`~hub.errors.RecordError` of that one record, not a failed batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection

from connectors.sqldb import TableDescription

__all__ = [
    "Kind",
    "TableShape",
    "UnfitValueError",
    "add_columns",
    "create_table",
    "kind_of_type",
    "table_object",
]

Kind = Literal[
    "integer", "float", "boolean", "text", "decimal", "datetime", "date", "time", "json", "other"
]

_INT64 = 2**63


class UnfitValueError(ValueError):
    """A value that cannot be stored in its column; the message says which and why."""


def kind_of_value(value: Any) -> Kind:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if -_INT64 <= value < _INT64 else "text"
    if isinstance(value, float):
        return "float"
    return "text"


def kind_of_type(column_type: sa.types.TypeEngine[Any]) -> Kind:
    """How values are converted for an existing column of ``column_type``."""
    checks: tuple[tuple[type[sa.types.TypeEngine[Any]], Kind], ...] = (
        (sa.Boolean, "boolean"),
        (sa.Integer, "integer"),
        (sa.Float, "float"),  # before Numeric: Float is a Numeric
        (sa.Numeric, "decimal"),
        (sa.DateTime, "datetime"),
        (sa.Date, "date"),
        (sa.Time, "time"),
        (sa.JSON, "json"),
        (sa.String, "text"),  # Text, VARCHAR, CHAR … are all String
    )
    for base, kind in checks:
        if isinstance(column_type, base):
            return kind
    return "other"


def sql_type(kind: Kind, dialect: str, is_key: bool) -> sa.types.TypeEngine[Any]:
    """The column type changehub creates for inferred ``kind``."""
    if kind == "integer":
        return sa.BigInteger()
    if kind == "float":
        return sa.Double()
    if kind == "boolean":
        return sa.Boolean()
    if kind == "datetime":
        # Only history tables' own time columns are planned as datetime (JSON has no
        # timestamps); MySQL's DATETIME would drop the milliseconds without fsp.
        return mysql.DATETIME(fsp=6) if dialect in ("mysql", "mariadb") else sa.DateTime()
    if is_key and dialect in ("mysql", "mariadb"):
        return sa.String(255)
    return sa.Text()


def fit(value: Any, kind: Kind, column: str) -> Any:
    """``value`` (from JSON) converted for a column of ``kind``; UnfitValueError if it cannot be."""
    if value is None:
        return None
    try:
        return _CONVERT[kind](value)
    except (TypeError, ValueError, InvalidOperation, OverflowError):
        raise UnfitValueError(
            f"column {column!r} holds {kind} values, and {_short(value)} is not one"
        ) from None


def _integer(value: Any) -> int:
    # bool is an int: true/false into an integer column are 1/0 (MySQL's BOOLEAN is TINYINT).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise TypeError
    if not -_INT64 <= value < _INT64:
        raise OverflowError
    return int(value)


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # orjson stops at 64 bits
    return orjson.dumps(value).decode()


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError
    return Decimal(str(value))


def _datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError
    return datetime.fromisoformat(value)


def _date(value: Any) -> date:
    if not isinstance(value, str):
        raise TypeError
    return date.fromisoformat(value)


def _time(value: Any) -> time:
    if not isinstance(value, str):
        raise TypeError
    return time.fromisoformat(value)


def _json(value: Any) -> Any:
    return value


_CONVERT = {
    "integer": _integer,
    "float": _float,
    "boolean": _boolean,
    "text": _text,
    "decimal": _decimal,
    "datetime": _datetime,
    "date": _date,
    "time": _time,
    "json": _json,
    "other": _json,
}


# Values of these exact types are stored as they are in columns of these kinds (and ints
# within 64 bits in integer columns).
_AS_IS: dict[Kind, type] = {"float": float, "boolean": bool, "text": str}


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class TableShape:
    """A target table as the sink knows it: the database's columns plus planned ones.

    Not thread-safe (one sink thread). ``key`` is the events' key columns; ``upsertable``
    says whether the table's primary key is exactly those columns (else rows are replaced
    by delete + insert).
    """

    name: str
    key: tuple[str, ...]
    columns: dict[str, Kind] = field(default_factory=dict)
    types: dict[str, sa.types.TypeEngine[Any]] = field(default_factory=dict)
    exists: bool = False
    upsertable: bool = True

    @classmethod
    def of(
        cls, name: str, key: tuple[str, ...], described: TableDescription | None
    ) -> TableShape:
        """The shape of table ``name`` for events keyed by ``key`` (see :meth:`refresh`)."""
        shape = cls(name, key)
        shape.refresh(described)
        return shape

    def refresh(self, described: TableDescription | None) -> None:
        """Take the database's view of the table (None: it does not exist).

        Raises UnfitValueError when the table has another primary key than the events' key: the
        sink could not upsert by it.
        """
        if described is None:
            self.types, self.exists, self.upsertable = {}, False, True
            return
        pk = described.primary_key
        if pk and set(pk) != set(self.key):
            raise UnfitValueError(
                f"table {self.name!r} has primary key ({', '.join(pk)}) but the events' key is "
                f"({', '.join(self.key)}): point the sink at another table (the `table` "
                "template), or change the table's primary key"
            )
        self.types = dict(described.columns)
        for column, column_type in self.types.items():
            self.columns.setdefault(column, kind_of_type(column_type))
        self.exists, self.upsertable = True, bool(pk)

    def fit(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """``row`` converted to the columns' types; new columns are planned (UnfitValueError)."""
        out: dict[str, Any] = {}
        new: dict[str, Kind] = {}
        columns = self.columns
        for column, value in row.items():
            kind = columns.get(column)
            if kind is None:
                if value is None:
                    continue  # no type to give it yet; absent means null anyway
                kind = new[column] = kind_of_value(value)
            # The common case, a value already of its column's Python type, skips the
            # converter: this runs for every value of every record.
            if type(value) is _AS_IS.get(kind) or (
                kind == "integer" and type(value) is int and -_INT64 <= value < _INT64
            ):
                out[column] = value
            else:
                out[column] = fit(value, kind, column)
        self.columns.update(new)  # only once the whole row fits
        return out

    def planned(self, dialect: str) -> dict[str, sa.types.TypeEngine[Any]]:
        """Columns the sink will add (all of them when the table does not exist)."""
        return {
            c: sql_type(k, dialect, c in self.key)
            for c, k in self.columns.items()
            if c not in self.types
        }


def create_table(conn: Connection, schema: str | None, shape: TableShape) -> None:
    dialect = conn.dialect.name
    planned = shape.planned(dialect)
    ordered = [c for c in shape.key if c in planned] + [c for c in planned if c not in shape.key]
    table = sa.Table(
        shape.name,
        sa.MetaData(),
        *(
            sa.Column(c, planned[c], primary_key=c in shape.key, autoincrement=False)
            for c in ordered
        ),
        schema=schema,
    )
    table.create(conn)
    shape.types.update(planned)
    shape.exists = shape.upsertable = True


def add_columns(conn: Connection, schema: str | None, shape: TableShape) -> list[str]:
    """``ALTER TABLE … ADD COLUMN`` for every planned column; returns their names.

    SQLAlchemy core has no construct for it (Alembic does), so the statement is written here
    with SQLAlchemy's identifier quoting and type compiler.
    """
    dialect = conn.dialect
    prep = dialect.identifier_preparer
    table = prep.format_table(sa.Table(shape.name, sa.MetaData(), schema=schema))
    planned = shape.planned(dialect.name)
    for column, column_type in planned.items():
        ddl = (
            f"ALTER TABLE {table} ADD COLUMN {prep.quote(column)} "
            f"{column_type.compile(dialect=dialect)}"
        )
        conn.execute(sa.text(ddl))
        shape.types[column] = column_type
    return list(planned)


def table_object(schema: str | None, shape: TableShape) -> sa.Table:
    """A Table for statements, with the columns' types so values are bound correctly."""
    return sa.Table(
        shape.name,
        sa.MetaData(),
        *(sa.Column(c, t, primary_key=c in shape.key) for c, t in shape.types.items()),
        schema=schema,
    )
