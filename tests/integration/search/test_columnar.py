"""The search sink's columnar path (a batch of upserts at a time) against the real engines:
the documents are those the per-record path makes, cut into bulks by count and bytes, and a
rejected one still reaches the dead-letter topic as its own record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from connectors.testing import DeadLetters
from tests.integration.search.conftest import Target
from tests.integration.search.events import Stream
from tests.integration.search.test_search_sink import running
from tests.unit.search.test_columnar import floats, row


def test_a_batch_of_upserts_gives_the_per_record_paths_documents(
    engine: Target, tmp_path: Path
) -> None:
    per_record, columnar = Stream(), Stream("shop.public.batched")
    # (not an unsigned 64-bit integer: beyond the engines' long)
    rows = [{**row(i), **{k: v for k, v in floats(i).items() if k != "u64"}}
            for i in range(300)]
    rows[7]["text"] = "x" * 3000  # a bulk cut short by bytes
    with running(engine, tmp_path, bulk_actions=64, bulk_bytes=60_000) as sink:
        for r in rows:  # one record per write: the per-record path
            sink.write(per_record.change("c", r))
        first = columnar.change("c", rows[0])
        sink.write(first)  # a new index's mappings come from the per-record path
        sink.flush()
        assert sink.metrics()["records_columnar"] == 0
        sink.write([r for x in rows[1:] for r in columnar.change("u", x)])
        sink.flush()
        metrics = sink.metrics()
    assert metrics["records_columnar"] == 299
    assert metrics["documents_indexed"] == 600
    assert metrics["bulk_requests"] >= 1 + 299 // 64
    expected = engine.documents(f"{engine.prefix}-orders")
    got = engine.documents(f"{engine.prefix}-batched")
    assert len(expected) == len(got) == 300
    for doc_id, source in expected.items():
        assert orjson.dumps(got[doc_id]) == orjson.dumps(source)
    assert orjson.dumps(got["5"]) == orjson.dumps(rows[5])
    assert engine.versions(f"{engine.prefix}-batched")["5"] == first[0].offset + 1 + 5


def test_a_rejected_document_of_a_batch_is_dead_lettered_as_its_record(
    engine: Target, tmp_path: Path
) -> None:
    s = Stream()
    dead = DeadLetters(tolerate=True)
    with running(engine, tmp_path, dead) as sink:
        sink.write(s.change("c", {"id": 0, "qty": 0}))
        sink.flush()  # the index exists now, qty mapped as long
        batch: list[Any] = []
        for i in range(1, 100):
            batch += s.change("c", {"id": i, "qty": "not a number" if i == 42 else i})
        sink.write(batch)
        assert sink.flush() == {batch[0].tp: batch[-1].offset + 1}
        metrics = sink.metrics()
    assert metrics["records_columnar"] == 99
    assert metrics["dead_letters"] == 1
    assert [r.offset for r, _ in dead.records] == [batch[41].offset]
    assert "mapper_parsing_exception" in dead.records[0][1]
    assert f"{engine.prefix}-orders/42" in dead.records[0][1]
    assert len(engine.documents(f"{engine.prefix}-orders")) == 99
