"""External versions: why a replayed or late write can never overwrite a newer one.

Every index and delete operation the sink sends carries ``version_type: external`` and a
version; the engine applies it only if the version is greater than the document's current
one (or the deleted document's remembered one) and answers 409 otherwise, which the sink
counts as a replay and does not treat as an error.

**The version is the record's log offset + 1** (the engine needs versions >= 1 to be
useful; 0 is below every real one). We considered the source position instead (for
Postgres ``source.lsn``) and chose the offset, as Confluent's Elasticsearch connector does
with Kafka offsets, because:

* it is strictly increasing per key: every change of a key lands in the same partition of
  the same topic, in commit order, and offsets in a partition only grow; the LSN of a change
  is not — a transaction that began before another and committed after it has older
  change LSNs, and snapshot reads (``op: r``) share one LSN, or none for polled sources;
* it exists for every source (polled tables, binlogs, Postgres) and for compacted topics,
  where compaction keeps offsets, so a rebuild from the log (``changehub reindex``) produces
  the same versions.

The cost, documented for users: versions are comparable only within one topic. An index fed
by several topics with overlapping document ids would see one topic's writes refused by
another's higher offsets — give such topics their own indexes (the default ``{topic}``
template does). A topic deleted and created anew starts at offset 0 again: rebuild its
index with ``changehub reindex`` (a fresh index has no versions).

Deletes carry versions too, and the engine remembers a deleted document's version for
``index.gc_deletes`` (60 s by default; the sink sets ``gc_deletes``, default 1 h, on indexes
it creates). Correctness does not depend on it: the hub replays in offset order, so an old write
for a key is sent again only as part of an ordered replay, whose later records then win
again. The sink collapses pending operations to one per document, but sends full bulks in
the background while it reads on, so two operations on one document can be in flight at
once; whichever arrives first, the engine keeps the newer (a delete's version is remembered
for ``gc_deletes``, far longer than a bulk is in flight) and answers 409 to the older. The
longer ``gc_deletes`` also narrows the window in which a replayed old upsert is briefly
visible before its delete is replayed.

Documents with nested rows (:mod:`.nested`) combine several topics, so they use the
sink's own flush sequence instead: see there.
"""

from __future__ import annotations

from log.api import LogRecord

__all__ = ["MAX_VERSION", "version_of"]

MAX_VERSION = 2**63 - 1  # the engines' limit for external versions


def version_of(record: LogRecord) -> int:
    """The external version of the operation made from ``record``."""
    return record.offset + 1
