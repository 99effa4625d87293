"""From a log record to a document operation: index name, id, op, version, body.

The document id is the primary key from the record's key (a JSON object in the key
columns' declared order). A one-column key gives its value as text (``42``, ``abc``); a
composite key joins the values with ``|``, each escaped first (``\\`` -> ``\\\\``, ``|`` ->
``\\|``), so two different keys never give the same id and the same key always gives the
same id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

__all__ = ["Action", "BadRecordError", "document_id"]

SEPARATOR = "|"


class BadRecordError(ValueError):
    """The record is not a change event the sink can turn into a document."""


@dataclass(slots=True)
class Action:
    """One bulk operation: ``index`` (with ``body``) or ``delete`` of ``doc_id`` in ``index``."""

    op: Literal["index", "delete"]
    index: str
    doc_id: str
    version: int
    body: dict[str, Any] | None = None

    def encode(self, version_type: str = "external") -> bytes:
        """The action's lines of a bulk request body (NDJSON, each line ending in \\n)."""
        meta = orjson.dumps(
            {
                self.op: {
                    "_index": self.index,
                    "_id": self.doc_id,
                    "version": self.version,
                    "version_type": version_type,
                }
            }
        )
        if self.op == "delete":
            return meta + b"\n"
        return meta + b"\n" + orjson.dumps(self.body, option=orjson.OPT_NON_STR_KEYS) + b"\n"


def document_id(key: Mapping[str, Any]) -> str:
    """The document id for a primary key (see the module doc)."""
    if not key:
        raise BadRecordError("the record's key is empty: a document needs a primary key")
    parts = [_text(v) for v in key.values()]
    if len(parts) == 1:
        return parts[0]
    return SEPARATOR.join(p.replace("\\", "\\\\").replace(SEPARATOR, "\\" + SEPARATOR)
                          for p in parts)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if type(value) is int:  # the usual key; str() is what orjson would write (bool is not)
        return str(value)
    if value is None:
        return "null"
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
