"""The change event: Debezium-compatible envelope and key, encoded with orjson.

Every change is one record: key = the row's primary key as a JSON object in the key
columns' declared order (so the same row always gives the same bytes, which both log
backends hash with murmur2 to pick the partition), value = the envelope::

    {"before": {...} | null, "after": {...} | null, "op": "c|u|d|r|t", "ts_ms": ...,
     "source": {"connector": ..., "name": ..., "db": ..., "schema": ..., "table": ...,
                "ts_ms": ..., "snapshot": "false", ...position fields...},
     "transaction": {"id": "812", "total_order": 3} | null}

A delete is followed by a tombstone (same key, null value) so compacted topics forget the
row. Sinks also read topics Debezium wrote: the same key and envelope, either bare (Kafka
Connect's JsonConverter with ``schemas.enable=false``) or wrapped with their schema as
``{"schema": {...}, "payload": <key or envelope>}`` (``schemas.enable=true``, the
converter's default); :func:`unwrap` takes the payload out of the wrapped form.

Values must already be JSON-ready (connectors map their types first); orjson encodes
datetimes, UUIDs and Decimals are expected as strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import orjson

from connectors.api import SourceRecord
from connectors.topics import topic_name  # here too: the sources import it from this module

__all__ = [
    "Op",
    "decode_key",
    "decode_value",
    "encode_key",
    "event_records",
    "topic_name",
    "unwrap",
]

Op = Literal["c", "u", "d", "r", "t"]

_OPTS = orjson.OPT_NON_STR_KEYS


def encode_key(row: Mapping[str, Any], key_columns: Sequence[str]) -> bytes:
    return orjson.dumps({c: row[c] for c in key_columns}, option=_OPTS)


def event_records(
    *,
    topic: str,
    key: bytes | None,
    op: Op,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    source: Mapping[str, Any],
    ts_ms: int,
    transaction: Mapping[str, Any] | None = None,
) -> list[SourceRecord]:
    """The record(s) for one change: the event, plus a tombstone after a delete."""
    value = orjson.dumps(
        {
            "before": before,
            "after": after,
            "op": op,
            "ts_ms": ts_ms,
            "source": source,
            "transaction": transaction,
        },
        option=_OPTS,
    )
    out = [SourceRecord(topic, key, value, ts_ms)]
    if op == "d":
        out.append(SourceRecord(topic, key, None, ts_ms))
    return out


def unwrap(doc: Any) -> Any:
    """The payload of Kafka Connect's schema-wrapped JSON, or ``doc`` itself.

    Wrapped means exactly two fields, ``schema`` (a Connect schema: an object with a
    ``type``) and ``payload``; a row key whose columns happen to be called schema and
    payload has no such schema object and is left alone.
    """
    if isinstance(doc, dict) and len(doc) == 2 and "payload" in doc:
        schema = doc.get("schema")
        if isinstance(schema, dict) and isinstance(schema.get("type"), str):
            return doc["payload"]
    return doc


def decode_key(key: bytes | None) -> dict[str, Any] | None:
    return None if key is None else unwrap(orjson.loads(key))


def decode_value(value: bytes | None) -> dict[str, Any] | None:
    return None if value is None else unwrap(orjson.loads(value))
