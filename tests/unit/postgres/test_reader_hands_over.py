"""The source's reader gives a waiting hub the changes it has even while its stream never
pauses: the hub, back from an fsync, must not wait for a long run of decoding (that wait is
part of commit-to-log latency). The replication connection is a stand-in that always has
another single-row transaction ready, so the reader never sees an idle moment."""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from connectors.api import ConnectorContext, SourceBatch
from connectors.source.postgres.checkpoint import Checkpoint
from connectors.source.postgres.handoff import HandOffClosedError
from connectors.source.postgres.pgoutput import Relation
from connectors.source.postgres.schema import TableSchema
from connectors.source.postgres.source import PostgresSource, PostgresSourceConfig
from tests.unit.postgres import wire

OID = 16400
COLUMNS = [(True, "id", 23), (False, "name", 25)]
TS = 765_000_000_000_000


class EndlessStream:
    """A replication connection whose socket always holds the next message: a relation,
    then Begin, Insert, Commit of one-row transactions without end (until ``stop``)."""

    connected = True
    copying = True

    def __init__(self) -> None:
        self.sent = 0
        self.stopped = False
        self._lsn = 0x1000
        self._pending: list[bytes] = [wire.relation(OID, "public", "items", COLUMNS)]

    def start(self, *args: Any, **kwargs: Any) -> None:
        pass

    def read_nowait(self) -> bytes | None:
        if self.stopped:
            return None
        if not self._pending:
            n = self.sent
            self._pending = [
                wire.begin(self._lsn + 0x30, TS, 1000 + n),
                wire.insert(OID, [str(n).encode(), b"x"]),
                wire.commit(self._lsn + 0x30, self._lsn + 0x60, TS),
            ]
        self._lsn += 0x100
        self.sent += 1
        payload = self._pending.pop(0)
        return b"w" + struct.pack(">QQq", self._lsn, self._lsn, 0) + payload

    def wait(self, timeout: float | None) -> bool:
        return False

    def send_status(self, **kwargs: Any) -> None:
        pass


def test_a_waiting_hub_gets_the_changes_within_a_few_messages(tmp_path: Path) -> None:
    config = PostgresSourceConfig(
        name="shop", type="postgres", dsn="postgresql://u@127.0.0.1/db", tables=["public.items"]
    )
    source = PostgresSource(
        config,
        ConnectorContext(
            name="shop",
            log=None,  # type: ignore[arg-type]  # read only for TOAST images: not needed here
            data_dir=tmp_path,
            logger=logging.getLogger("test"),
            topic_partitions=lambda _topic: 1,
        ),
    )
    source._catalog = SimpleNamespace(info=SimpleNamespace(server_version=150000))  # type: ignore[assignment]

    def schema_for(rel: Relation) -> TableSchema:
        return TableSchema.from_relation(
            rel, source_name="shop", db="db", types=source._types, key_for=lambda r: ("id",)
        )

    source._schema_for = schema_for  # type: ignore[method-assign]
    repl = EndlessStream()
    taken: list[tuple[SourceBatch | None, int]] = []

    def hub() -> None:
        batch = source.poll(10.0)
        taken.append((batch, repl.sent))  # messages the reader had when the hub got it

    def reader() -> None:
        with contextlib.suppress(HandOffClosedError):  # closed at the end of the test
            source._stream(repl, Checkpoint(0))  # type: ignore[arg-type]

    hub_thread = threading.Thread(target=hub)
    hub_thread.start()
    # the hub waits before the first message comes
    assert source._handoff.wait_for_taker(10), "the hub thread never waited for a batch"
    reader_thread = threading.Thread(target=reader)
    reader_thread.start()
    try:
        hub_thread.join(15)
        assert taken, "the hub got nothing"
        batch, _ = taken[0]
        assert batch is not None
        # A check for the waiting hub every 16 messages: the first batch holds at most the
        # five transactions those 16 messages carry (every 256: some eighty-five).
        assert 1 <= len(batch.records) <= 6
    finally:
        source._stopping = True
        repl.stopped = True
        source._handoff.close()
        reader_thread.join(10)
    assert not reader_thread.is_alive()
