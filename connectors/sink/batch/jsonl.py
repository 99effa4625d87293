"""JSON Lines export: one line per record, the envelope kept exactly as it is in the log::

    {"topic": "shop.public.orders", "partition": 0, "offset": 41, "timestamp": 1700000000000,
     "key": {"id": 7}, "value": {"before": null, "after": {...}, "op": "c", ...}}

``key`` and ``value`` are the record's JSON (``value`` null for a tombstone).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from connectors.sink.batch.rows import ExportRow

__all__ = ["EXTENSION", "encode"]

EXTENSION = "jsonl"


def encode(rows: Sequence[ExportRow]) -> bytes:
    out = bytearray()
    for row in rows:
        r = row.record
        out += orjson.dumps(
            {
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "timestamp": r.timestamp_ms,
                # Fragments embed the log's bytes unchanged (already checked to be JSON).
                "key": orjson.Fragment(r.key) if r.key is not None else None,
                "value": orjson.Fragment(r.value) if r.value is not None else None,
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
    return bytes(out)
