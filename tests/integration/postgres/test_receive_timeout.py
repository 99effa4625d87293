"""A replication connection that goes silent (a network partition the kernel does not see:
the TCP proxy stops forwarding but keeps the sockets open) is taken for dead after
``receive_timeout`` and the source reconnects; nothing is lost or repeated."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from hub.errors import RetriableError
from services.proxy import TcpProxy
from tests.fixtures.services import PostgresServer
from tests.integration.postgres.pipeline import Database, Pipeline, config, wait_until

pytestmark = pytest.mark.integration

TOPIC = "shop.public.items"


@pytest.fixture
def proxy(postgres: PostgresServer) -> Iterator[TcpProxy]:
    p = TcpProxy(postgres.host, postgres.port).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.mark.parametrize(
    "heartbeat",
    [
        pytest.param("1h", id="the-stream-goes-quiet"),
        # the heartbeat's queries on the catalog connection (through the proxy too) hang
        pytest.param("1s", id="a-heartbeat-query-hangs"),
    ],
)
def test_a_silent_connection_is_dropped_and_the_source_reconnects(
    db: Database, proxy: TcpProxy, log_dir: Path, heartbeat: str
) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v int)")
    dsn = make_conninfo(db.dsn, host="127.0.0.1", port=str(proxy.port))
    p = Pipeline(
        log_dir,
        config(db, dsn=dsn, snapshot="never", receive_timeout="2s", heartbeat_interval=heartbeat),
    )
    try:
        p.start()
        for i in range(10):
            db.execute("INSERT INTO items VALUES (%s, 0)", (i,))
        p.run_until(lambda: len(p.events(TOPIC)) >= 10, "the first events")
        proxy.cut("stall")
        cut_at = time.monotonic()
        with pytest.raises(RetriableError, match=r"receive_timeout"):
            wait_until(lambda: False, "the source to notice the silence", 60, step=p.step)
        # 2 s of silence (or of a query unanswered), well under the kernel's 30 s user timeout
        assert time.monotonic() - cut_at < 10
        p.stop()
        connections = proxy.connections
        proxy.restore()
        for i in range(10, 20):
            db.execute("INSERT INTO items VALUES (%s, 0)", (i,))

        def restarted() -> bool:
            # the hub backs off and restarts the source; until the old walsender has seen
            # the connection close, the slot may still be taken
            try:
                if p.source is None:
                    p.start()
                p.step()
            except RetriableError:
                p.stop()
                return False
            return len(p.events(TOPIC)) >= 20

        wait_until(restarted, "the source to stream again through the healed path")
        assert proxy.connections > connections
        assert [e["after"]["id"] for e in p.events(TOPIC)] == list(range(20))
    finally:
        p.close()
