"""A change stream for testing sinks: the records a source would have put into the log.

:func:`change_stream` makes inserts, updates, deletes with their tombstones and re-inserts
of deleted keys, over two topics (the first with two partitions), with a column that only
appears in later rounds (schema evolution) and values of every JSON type. It is fully
determined by its arguments. :func:`final_rows` computes what a table mirror must hold
after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.envelope import Op, decode_value, encode_key, event_records
from log.api import LogRecord, TopicPartition

__all__ = ["TOPICS", "change_stream", "final_rows"]

SOURCE = "conformance"
TOPICS: dict[str, int] = {  # topic -> partitions
    f"{SOURCE}.public.items": 2,
    f"{SOURCE}.public.orders": 1,
}


def change_stream(keys: int = 6, rounds: int = 3) -> list[LogRecord]:
    """Records in log order: per round and key an insert or update; some deletes."""
    offsets: dict[TopicPartition, int] = {}
    out: list[LogRecord] = []
    for round_ in range(rounds):
        for topic, partitions in TOPICS.items():
            table = topic.rsplit(".", 1)[1]
            for k in range(keys):
                key_row = {"id": k}
                key = encode_key(key_row, ["id"])
                deleted = round_ > 0 and (k + round_) % 4 == 0
                was_deleted = round_ > 1 and (k + round_ - 1) % 4 == 0
                after = None if deleted else _row(k, round_)
                op: Op = "d" if deleted else ("c" if round_ == 0 or was_deleted else "u")
                source = {
                    "connector": "conformance", "name": SOURCE, "db": "test",
                    "schema": "public", "table": table, "ts_ms": 1_700_000_000_000 + round_,
                    "snapshot": "false",
                }
                for rec in event_records(
                    topic=topic,
                    key=key,
                    op=op,
                    before=_row(k, round_ - 1) if deleted else None,
                    after=after,
                    source=source,
                    ts_ms=1_700_000_000_000 + round_,
                ):
                    tp = TopicPartition(topic, k % partitions)
                    offset = offsets.get(tp, 0)
                    offsets[tp] = offset + 1
                    out.append(
                        LogRecord(topic, tp.partition, offset, rec.timestamp_ms, rec.key, rec.value)
                    )
    return out


def _row(k: int, round_: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": k,
        "name": f"item {k} v{round_}",
        "qty": k * 10 + round_,
        "price": k + round_ / 4,
        "active": (k + round_) % 2 == 0,
        "tags": {"round": round_, "labels": [f"l{k}"]},
        "discount": None,
    }
    if round_ >= 1:
        row["note"] = f"added in round {round_}"
    return row


def final_rows(records: Sequence[LogRecord]) -> dict[str, dict[str, dict[str, Any]]]:
    """topic -> key JSON text -> the row's last after-image (deleted rows absent)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        value = decode_value(r.value)
        if value is None:
            continue
        rows = out.setdefault(r.topic, {})
        ident = r.key.decode() if r.key is not None else ""
        if value["op"] == "d":
            rows.pop(ident, None)
        elif value["op"] == "t":
            rows.clear()
        else:
            rows[ident] = value["after"]
    return out
