"""Which index a document goes to, and the mappings of an index the sink creates.

Index names come from the ``index`` template over ``{topic}``, ``{source}``, ``{schema}``
and ``{table}`` (from the event's ``source`` block, else from the topic name
``<source>.<schema>.<table>``, unescaped: connectors/topics.py). Elasticsearch and
OpenSearch accept only lower-case names without ``\\ / * ? " < > | , # :`` or spaces, not
starting with ``-``, ``_`` or ``+``, so the rendered name is lower-cased and every other
character becomes ``_``.

Mappings come from the config (``mappings``) or are inferred from the documents of the
first bulk written to a new index. The envelope carries JSON values, not column types, so
inference works on the values as sources map them (see connectors/source/postgres/types.py);
for each column the first non-null value (an array's first element) decides: integers ->
``long``, other numbers -> ``double``, booleans -> ``boolean``, ISO-8601 dates and
timestamps -> ``date``, objects -> ``object`` (their fields mapped dynamically), other
strings -> ``text`` with a ``keyword`` sub-field. Columns null in every sampled document
are left to dynamic mapping.

Decimal strings are numbers: Postgres ``numeric`` (and MySQL ``DECIMAL``) arrive as strings
with every digit (``"12345.678901234567890"``), so a column whose sampled values are all
canonical decimals (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?``: no leading zeros, no exponent, as
Postgres prints numerics) maps to ``double``. Both engines coerce a numeric string into a
numeric field by default (``coerce: true``) and keep ``_source`` as sent, so the document
still holds every digit while range queries and aggregations work on the number. ``double``
rather than ``scaled_float``: the scale is a column property the event does not carry (a
value's trailing digits only hint at it), and a wrong scaling factor would round silently.
Because the type is read from values, a text column that happens to hold only digits
in the first bulk looks the same; so the field is mapped with ``ignore_malformed: true``
(a later value that is not a number is kept in ``_source`` and in the ``keyword`` sub-field,
and listed in the document's ``_ignored``, instead of rejecting the whole document) and a
``keyword`` sub-field for exact matches on the text. A value the mapping cannot take in
another type (a timestamp column's ``infinity``) is rejected by the engine and goes to the
dead-letter topic. Give explicit ``mappings`` to decide any of this yourself.
"""

from __future__ import annotations

import copy
import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from connectors.topics import split_topic

__all__ = [
    "NUMERIC_STRING", "PLACEHOLDERS", "index_name", "infer_mappings", "validate_index_template",
]

PLACEHOLDERS = ("topic", "source", "schema", "table")

_FORBIDDEN = re.compile(r'[\\/*?"<>|,#:\s]')
_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}"  # date
    r"(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$"  # optional time, zone
)
_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$")
MAX_INDEX_BYTES = 255
# A decimal string column (see the module doc for why each part is there).
NUMERIC_STRING: dict[str, Any] = {
    "type": "double",
    "ignore_malformed": True,
    "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
}


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
    parts = split_topic(topic)
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


def infer_mappings(documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Explicit mappings for the columns of ``documents`` whose type their values show."""
    samples: dict[str, list[Any]] = {}
    for document in documents:
        for column, value in document.items():
            scalars = samples.setdefault(column, [])
            _collect(value, scalars)
    properties: dict[str, Any] = {}
    for column, scalars in samples.items():
        if not scalars:
            continue  # null (or empty arrays) throughout: left to dynamic mapping
        if all(isinstance(v, str) and _DECIMAL.match(v) for v in scalars):
            properties[column] = copy.deepcopy(NUMERIC_STRING)
            continue
        field = _field_mapping(scalars[0])
        if field is not None:
            properties[column] = field
    return {"properties": properties}


def _collect(value: Any, scalars: list[Any]) -> None:
    """The non-null values of a column; an array maps as its elements, so they count."""
    if isinstance(value, list):
        for element in value:
            _collect(element, scalars)
    elif value is not None:
        scalars.append(value)


def _field_mapping(value: Any) -> dict[str, Any] | None:
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
