"""CSV export: the Parquet columns (:mod:`.parquet`) as text, with a header row.

``timestamp`` is ISO-8601 in UTC with milliseconds; row images and the source block are JSON
text in their cells; a null is an empty cell. Quoting follows RFC 4180 (the ``csv`` module's
``excel`` dialect with ``\\n`` line ends), so a JSON cell with commas or quotes reads back
whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime

from connectors.sink.batch.rows import ExportRow

__all__ = ["COLUMNS", "EXTENSION", "encode"]

EXTENSION = "csv"
COLUMNS = ("offset", "timestamp", "key", "op", "ts_ms", "before", "after", "source",
           "transaction")


def encode(rows: Sequence[ExportRow]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        r = row.record
        when = datetime.fromtimestamp(r.timestamp_ms / 1000, UTC)
        writer.writerow((
            r.offset,
            when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            r.key.decode() if r.key is not None else "",
            _text(row.op),
            _text(row.ts_ms),
            *(_text(block) for block in (row.before, row.after, row.source, row.transaction)),
        ))
    return buffer.getvalue().encode()


def _text(value: object) -> str:
    return "" if value is None else str(value)
