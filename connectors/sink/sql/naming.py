"""Which table an event goes to: the ``table`` template, rendered with sanitised names.

Placeholders are ``{topic}``, ``{source}``, ``{db}``, ``{schema}`` and ``{table}``, taken
from the event's ``source`` block, or from the topic name (``<source>.<schema>.<table>`` or
``<source>.<table>``, unescaped: connectors/topics.py) where the block lacks them. Each value
is sanitised to letters of any script, digits and ``_`` (so ``shop.public.orders`` renders
``{topic}`` as ``shop_public_orders``, and a table ``Заказы 2`` as ``Заказы_2``); a value
that is missing renders empty, and ``_`` left at either end of the name is dropped
(``{schema}_{table}`` without a schema is just the table). A dot written in the template
itself separates a target schema: ``analytics.{table}``.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping
from typing import Any

from connectors.topics import split_topic

__all__ = ["PLACEHOLDERS", "TableName", "render", "validate_template"]

PLACEHOLDERS = ("topic", "source", "db", "schema", "table")
TableName = tuple[str | None, str]  # (schema or None, table)

_UNSAFE = re.compile(r"\W+")  # any script's letters stay: every SQL database quotes them


def validate_template(template: str) -> str:
    """For the config model: only known placeholders, at most one literal dot, a table part."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"table template {template!r} is malformed: {exc}") from None
    for _literal, field, spec, conversion in parts:
        if field is not None and (field not in PLACEHOLDERS or spec or conversion):
            raise ValueError(
                f"table template {template!r} uses {{{field}}}; the placeholders are "
                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            )
    literal_text = "".join(lit for lit, *_ in parts)
    if literal_text.count(".") > 1:
        raise ValueError(f"table template {template!r} has more than one dot (schema.table)")
    if not template.rpartition(".")[2].strip():
        raise ValueError(f"table template {template!r} has an empty table part")
    return template


def render(template: str, topic: str, source: Mapping[str, Any] | None) -> TableName | None:
    """The (schema, table) for an event, or None when the template renders to nothing."""
    fields = source or {}
    try:
        # Every event of a table renders the same: remembered, as this runs once a record.
        return _render(template, topic, *(fields.get(k) for k in ("name", "db", "schema",
                                                                  "table")))
    except TypeError:  # a field that is not hashable (a JSON object): render it afresh
        return _render.__wrapped__(template, topic, *(fields.get(k) for k in (
            "name", "db", "schema", "table")))


@functools.lru_cache(maxsize=4096)
def _render(
    template: str, topic: str, name: Any, db: Any, schema: Any, table: Any
) -> TableName | None:
    source = {"name": name, "db": db, "schema": schema, "table": table}
    values = _values(topic, source)
    schema_part, dot, table_part = template.rpartition(".")
    table = _clean(table_part.format(**values))
    schema = _clean(schema_part.format(**values)) if dot else None
    if not table:
        return None
    return (schema or None, table)


def _values(topic: str, source: Mapping[str, Any]) -> dict[str, str]:
    parts = split_topic(topic)
    from_topic = {"source": parts[0]}
    if len(parts) >= 3:
        from_topic |= {"schema": parts[-2], "table": parts[-1]}
    elif len(parts) == 2:
        from_topic["table"] = parts[1]
    out = {"topic": _sanitise(topic)}
    for field, key in (("source", "name"), ("db", "db"), ("schema", "schema"), ("table", "table")):
        value = source.get(key) or from_topic.get(field) or ""
        out[field] = _sanitise(str(value))
    return out


def _sanitise(value: str) -> str:
    return _UNSAFE.sub("_", value)


def _clean(name: str) -> str:
    return name.strip("_")
