""""Target equals source", row by row: every row of the Postgres table has exactly one
document in the index with the same id and the same field values, and the index holds no
other document. The verdict counts what is lost (rows without a document), extra
(documents without a row: a delete lost or a row resurrected) and divergent (both exist,
values differ: an update lost or applied out of order)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import opensearchpy
from opensearchpy import helpers

from tests.reliability.rig import Pipeline, ScenarioError, wait_until

SAMPLES = 5


@dataclass
class Verdict:
    records: int  # rows in the source
    documents: int  # documents in the index
    lost: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    divergent: list[str] = field(default_factory=list)  # "id: field row != doc"
    reason: str = ""  # why the wait for equality ended early, if it did

    @property
    def equal(self) -> bool:
        return not (self.lost or self.extra or self.divergent)

    def describe(self) -> str:
        if self.equal:
            return f"equal: {self.records} rows, {self.documents} documents"
        return (f"{self.records} rows vs {self.documents} documents: "
                f"{len(self.lost)} lost {self.lost[:SAMPLES]}, "
                f"{len(self.extra)} extra {self.extra[:SAMPLES]}, "
                f"{len(self.divergent)} divergent {self.divergent[:SAMPLES]}")


def source_rows(p: Pipeline) -> dict[str, dict[str, Any]]:
    """The table's rows as the source maps them to JSON (numeric as text, jsonb as JSON)."""
    out = {}
    for id_, name, qty, price, note, meta, ts in p.rows(
            f"SELECT id, name, qty, price, note, meta, ts FROM {p.table}"):
        out[str(id_)] = {"id": id_, "name": name, "qty": qty,
                         "price": None if price is None else str(price), "note": note,
                         "meta": meta, "ts": ts}
    return out


def _normalised(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    if isinstance(out.get("ts"), str):
        out["ts"] = datetime.fromisoformat(out["ts"].replace("Z", "+00:00"))
    if out.get("price") is not None:
        out["price"] = str(Decimal(str(out["price"])).quantize(Decimal("0.01")))
    return out


def documents(client: opensearchpy.OpenSearch, index: str) -> dict[str, dict[str, Any]]:
    if not client.indices.exists(index=index):
        return {}
    client.indices.refresh(index=index)
    return {hit["_id"]: hit["_source"]
            for hit in helpers.scan(client, index=index, query={"query": {"match_all": {}}},
                                    size=5000, preserve_order=False)}


def compare(p: Pipeline) -> Verdict:
    rows = source_rows(p)
    client = p.engine()
    try:
        docs = documents(client, p.name)
    finally:
        client.close()
    verdict = Verdict(len(rows), len(docs))
    verdict.lost = sorted(set(rows) - set(docs), key=int)
    verdict.extra = sorted(set(docs) - set(rows), key=int)
    for key in sorted(set(rows) & set(docs), key=int):
        got = _normalised(docs[key])
        want = rows[key]
        for name in sorted(set(want) | set(got)):
            if want.get(name) != got.get(name):
                verdict.divergent.append(f"{key}: {name} {want.get(name)!r} != {got.get(name)!r}")
                break
    return verdict


def index_count(p: Pipeline) -> int:
    client = p.engine()
    try:
        if not client.indices.exists(index=p.name):
            return 0
        # No explicit refresh: the index refreshes itself every second, and a refresh per
        # poll is costly on a loaded engine; documents() refreshes before the real check.
        return int(client.count(index=p.name)["count"])
    finally:
        client.close()


def index_operations(p: Pipeline) -> int:
    """Index + delete operations the engine applied to the index so far: it moves while the
    sink works, even when the document count does not (updates)."""
    client = p.engine()
    try:
        stats = client.indices.stats(index=p.name, metric="indexing")
        indexing = stats["_all"]["primaries"].get("indexing", {})
        return int(indexing.get("index_total", 0)) + int(indexing.get("delete_total", 0))
    except opensearchpy.NotFoundError:
        return 0
    finally:
        client.close()


def converge(p: Pipeline, idle_s: float, *, cap_s: float = 3600.0,
             hub_must_live: bool = True) -> Verdict:
    """Wait (the workload stopped) until the index equals the table; the last verdict.

    It waits as long as the sink makes progress (the engine's operation count moves), and
    gives up after ``idle_s`` without progress or ``cap_s`` in all: a big backlog on a slow
    machine is not a failure, a stalled sink is. The cheap count is compared first; the
    row-by-row comparison runs when counts agree. A hub that dies while we wait fails at
    once with its log, rather than at the deadline.
    """
    last: list[Verdict] = []
    progress = {"ops": -1, "at": time.monotonic()}

    def caught_up() -> bool:
        if hub_must_live:
            p.assert_alive()
        try:
            return compared()
        except (opensearchpy.TransportError, opensearchpy.ConnectionError):
            # The engine is busy or its shards are still recovering (it may just have been
            # restarted): ask again at the next poll.
            return False

    def compared() -> bool:
        ops = index_operations(p)
        now = time.monotonic()
        if ops != progress["ops"]:
            progress.update(ops=ops, at=now)
        elif now - progress["at"] > idle_s:
            raise ScenarioError(f"the sink made no progress for {idle_s:.0f} s")
        total = p.rows(f"SELECT count(*) FROM {p.table}")[0][0]
        if index_count(p) != total and last:
            return False
        last[:] = [compare(p)]
        return last[0].equal

    reason = ""
    try:
        wait_until(caught_up, "the index to equal the table", cap_s, poll_s=1.0)
    except AssertionError as exc:
        reason = str(exc).splitlines()[0]
        if hub_must_live:
            p.assert_alive()
    verdict = last[0] if last and last[0].equal else compare(p)
    verdict.reason = reason
    return verdict
