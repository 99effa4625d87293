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
        # The action line is put together from its parts rather than dumped from a dict of a
        # dict: the same bytes, without two dicts per document (index and id are JSON strings
        # from orjson, so quotes and control characters in them are escaped).
        meta = b"".join((
            _OPEN[self.op], orjson.dumps(self.index), b',"_id":', orjson.dumps(self.doc_id),
            b',"version":', str(self.version).encode(), b',"version_type":',
            orjson.dumps(version_type), b"}}\n",
        ))
        if self.op == "delete":
            return meta
        return meta + orjson.dumps(self.body, option=_BODY_OPTS)


_OPEN = {"index": b'{"index":{"_index":', "delete": b'{"delete":{"_index":'}
# Newline-terminated by orjson itself: one concatenation less per document.
_BODY_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def document_id(key: Mapping[str, Any]) -> str:
    """The document id for a primary key (see the module doc)."""
    if len(key) == 1:
        (value,) = key.values()
        # The usual key, a single integer column: str() is what orjson would write.
        return str(value) if type(value) is int else _text(value)
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
