"""Which index a document goes to, and the mappings of an index the sink creates.

Index names come from the ``index`` template over ``{topic}``, ``{source}``, ``{schema}``
and ``{table}`` (from the event's ``source`` block, else from the topic name
``<source>.<schema>.<table>``). Elasticsearch and OpenSearch accept only lower-case names
without ``\\ / * ? " < > | , # :`` or spaces, not starting with ``-``, ``_`` or ``+``, so the
rendered name is lower-cased and every other character becomes ``_``.

Mappings come from the config (``mappings``) or are inferred from the first row written to a
new index. The envelope carries JSON values, not column types, so inference works on the
values as sources map them (see connectors/source/postgres/types.py): integers ->
``long``, other numbers -> ``double``, booleans -> ``boolean``, ISO-8601 dates and timestamps
-> ``date``, other strings -> ``text`` with a ``keyword`` sub-field, objects -> ``object``
(their fields mapped dynamically). Postgres ``numeric`` arrives as a string with every digit
and so is mapped as text + keyword; give it an explicit mapping (``scaled_float`` or
``double``) if you want range queries on it. Columns that are null in the first row are
left to dynamic mapping. A later value the mapping cannot take (a timestamp column's
``infinity``) is rejected by the engine and goes to the dead-letter topic.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

__all__ = ["PLACEHOLDERS", "index_name", "infer_mappings", "validate_index_template"]

PLACEHOLDERS = ("topic", "source", "schema", "table")

_FORBIDDEN = re.compile(r'[\\/*?"<>|,#:\s]')
_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}"  # date
    r"(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$"  # optional time, zone
)
MAX_INDEX_BYTES = 255


def validate_index_template(template: str) -> str:
    """For the config model: only known placeholders, and not empty."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"index template {template!r} is malformed: {exc}") from None
    for _literal, field, spec, conversion in parts:
        if field is not None and (field not in PLACEHOLDERS or spec or conversion):
            raise ValueError(
                f"index template {template!r} uses {{{field}}}; the placeholders are "
                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            )
    if not template.strip():
        raise ValueError("index template is empty")
    return template


def index_name(template: str, topic: str, source: Mapping[str, Any] | None) -> str:
    """The index for an event of ``topic`` whose envelope has ``source``."""
    parts = topic.split(".")
    values = {
        "topic": topic,
        "source": parts[0],
        "schema": parts[1] if len(parts) == 3 else "",
        "table": parts[-1],
    }
    for key in ("schema", "table"):
        if source and source.get(key):
            values[key] = str(source[key])
    name = _FORBIDDEN.sub("_", template.format(**values).lower()).lstrip("-_+")
    if name in ("", ".", ".."):
        raise ValueError(
            f"index template {template!r} renders to {name!r} for topic {topic!r}, "
            "which is not a valid index name"
        )
    return name.encode()[:MAX_INDEX_BYTES].decode(errors="ignore")


def infer_mappings(row: Mapping[str, Any]) -> dict[str, Any]:
    """Explicit mappings for the columns of ``row`` whose type its values show."""
    properties: dict[str, Any] = {}
    for column, value in row.items():
        field = _field_mapping(value)
        if field is not None:
            properties[column] = field
    return {"properties": properties}


def _field_mapping(value: Any) -> dict[str, Any] | None:
    if isinstance(value, list):
        # An array maps as its elements; the first non-null one stands for all.
        for element in value:
            if element is not None:
                return _field_mapping(element)
        return None
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "long"}
    if isinstance(value, float):
        return {"type": "double"}
    if isinstance(value, str):
        if _DATE.match(value):
            return {"type": "date", "format": "strict_date_optional_time||epoch_millis"}
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    if isinstance(value, dict):
        return {"type": "object"}
    return None
