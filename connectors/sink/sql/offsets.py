"""The sink's offsets, kept in the target database next to the rows they describe.

Table ``_changehub_offsets`` (sink, topic, partition, next_offset), primary key (sink,
topic, partition). A flush updates it in the same transaction as the rows, so after any
crash the target holds exactly the rows of the offsets it names, and a restart resumes
there: records the hub replays from an older commit are recognised and skipped.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.api import Offsets
from connectors.sink.sql.upsert import upsert_rows
from log.api import TopicPartition

__all__ = ["OFFSETS_TABLE", "ensure_offsets_table", "load_offsets", "store_offsets"]

OFFSETS_TABLE = "_changehub_offsets"

_table = sa.Table(
    OFFSETS_TABLE,
    sa.MetaData(),
    sa.Column("sink", sa.String(255), primary_key=True),
    sa.Column("topic", sa.String(255), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)
_KEY = ("sink", "topic", "partition")


def ensure_offsets_table(conn: Connection) -> None:
    _table.create(conn, checkfirst=True)


def load_offsets(conn: Connection, sink: str) -> Offsets:
    rows = conn.execute(
        sa.select(_table.c.topic, _table.c.partition, _table.c.next_offset).where(
            _table.c.sink == sink
        )
    )
    return {TopicPartition(topic, partition): offset for topic, partition, offset in rows}


def store_offsets(conn: Connection, sink: str, offsets: Offsets) -> None:
    rows = [
        {"sink": sink, "topic": tp.topic, "partition": tp.partition, "next_offset": offset}
        for tp, offset in sorted(offsets.items())
    ]
    upsert_rows(conn, _table, _KEY, rows)
