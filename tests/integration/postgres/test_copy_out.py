"""COPY … TO STDOUT read straight from libpq (the snapshot's reader)."""

from __future__ import annotations

import psycopg
import pytest

from connectors.source.postgres.copy_out import CopyOut
from tests.integration.postgres.pipeline import Database

pytestmark = pytest.mark.integration

QUERY = b"COPY (SELECT g, 'r' || g FROM generate_series(1, 100000) g) TO STDOUT"


def test_rows_come_in_order_in_reads_of_n_and_the_connection_is_usable_after(
    db: Database,
) -> None:
    with psycopg.connect(db.dsn) as conn:
        copy = CopyOut(conn, QUERY)
        first = copy.read(3)
        assert [bytes(line) for line in first] == [b"1\tr1\n", b"2\tr2\n", b"3\tr3\n"]
        rest = []
        while lines := copy.read(10_000):
            rest.extend(lines)
        assert len(rest) == 99_997 and bytes(rest[-1]) == b"100000\tr100000\n"
        assert copy.done and copy.read(5) == []
        assert conn.execute("SELECT 42").fetchone() == (42,)


def test_a_copy_closed_half_way_leaves_the_transaction_usable(db: Database) -> None:
    with psycopg.connect(db.dsn) as conn:
        conn.execute("SELECT 1")  # a transaction is open, as the snapshot's is
        copy = CopyOut(conn, QUERY)
        assert len(copy.read(10)) == 10
        copy.close()
        # The cancel may or may not land before the COPY ends; either way the connection
        # answers again (after a rollback if it did abort the transaction).
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            conn.rollback()
        assert conn.execute("SELECT 42").fetchone() == (42,)


def test_a_failing_copy_raises_the_servers_error(db: Database) -> None:
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            CopyOut(conn, b"COPY (SELECT * FROM missing) TO STDOUT")
        copy = CopyOut(conn, b"COPY (SELECT 1 / (g - 3) FROM generate_series(1, 5) g) TO STDOUT")
        with pytest.raises(psycopg.errors.DivisionByZero):
            while copy.read(100):
                pass
        assert conn.execute("SELECT 42").fetchone() == (42,)


def test_blocks_hold_the_rows_of_line_reads_back_to_back_with_their_count(db: Database) -> None:
    with psycopg.connect(db.dsn) as conn:
        lines = CopyOut(conn, QUERY).read(200_000)
        copy = CopyOut(conn, QUERY)
        blocks = []
        while True:
            block, count = copy.read_block(30_000)
            assert block.count(b"\n") == count
            blocks.append(block)
            if count < 30_000:
                break
        assert [b.count(b"\n") for b in blocks] == [30_000, 30_000, 30_000, 10_000]
        assert b"".join(blocks) == b"".join(lines)
        assert copy.done and copy.read_block(5) == (b"", 0)
        assert conn.execute("SELECT 42").fetchone() == (42,)
