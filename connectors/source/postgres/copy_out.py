"""``COPY … TO STDOUT`` rows straight from libpq, many per call.

psycopg's ``Copy`` iterator runs a generator and its wait loop in Python for every COPY data
message, and Postgres sends one message per row: about 2 µs a row, more than Postgres spends
producing it. :class:`CopyOut` sends the COPY through the connection's low-level ``pq`` layer
and pulls rows with one ``get_copy_data`` call each, waiting on the socket (without the GIL)
only when libpq has nothing buffered.

It runs in the connection's current transaction (the snapshot's); the caller reads it to the
end or :meth:`CopyOut.close` s it before using the connection again.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import pq

__all__ = ["CopyOut"]


class CopyOut:
    """One ``COPY (…) TO STDOUT`` in progress on ``conn``. Not thread-safe."""

    def __init__(self, conn: psycopg.Connection[Any], query: bytes) -> None:
        self._pgconn = conn.pgconn
        self.done = False
        pgconn = self._pgconn
        pgconn.send_query(query)
        while pgconn.flush() == 1:
            select.select([], [pgconn.socket], [])
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                break
            select.select([pgconn.socket], [], [])
        result = pgconn.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_OUT:
            self.done = True
            self._drain()
            raise _error(result, "the COPY did not start")

    def read(self, n: int) -> list[memoryview]:
        """Up to ``n`` rows (COPY text lines with their newline); fewer only at the end."""
        out: list[memoryview] = []
        self._read(n, out.append)
        return out

    def read_block(self, n: int) -> tuple[bytes, int]:
        """Up to ``n`` rows as one block of COPY text lines (each with its newline), and how
        many; fewer only at the end. Each row is copied out of libpq's buffer as it comes,
        so libpq frees it at once and reuses the memory: holding thousands of row buffers
        until a join (:meth:`read`) cost twice the CPU a row."""
        block = bytearray()
        count = self._read(n, block.extend)
        return bytes(block), count

    def _read(self, n: int, append: Callable[[memoryview], object]) -> int:
        """Pass up to ``n`` rows to ``append``; how many it got."""
        if self.done:
            return 0
        pgconn = self._pgconn
        get = pgconn.get_copy_data
        left = n
        while left:
            size, data = get(1)
            if size > 0:
                append(data)
                left -= 1
            elif size == 0:  # nothing buffered: wait for the server
                select.select([pgconn.socket], [], [])
                pgconn.consume_input()
            else:
                self.done = True
                result = self._drain()
                if size == -2 or (result is not None and result.status != pq.ExecStatus.COMMAND_OK):
                    raise _error(result, "the COPY failed")
                break
        return n - left

    def close(self) -> None:
        """Stop the COPY if it still runs (cancel, discard what is in flight), so that the
        connection can be used again; a no-op once the COPY ended."""
        if self.done:
            return
        self.done = True
        pgconn = self._pgconn
        pgconn.get_cancel().cancel()
        while True:
            size, _ = pgconn.get_copy_data(1)
            if size > 0:
                continue
            if size < 0:
                break
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
        self._drain()

    def _drain(self) -> pq.abc.PGresult | None:
        """The COPY's final result; the connection is idle (in its transaction) after."""
        pgconn = self._pgconn
        last = None
        while True:
            while pgconn.is_busy():
                select.select([pgconn.socket], [], [])
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                return last
            last = result


def _error(result: pq.abc.PGresult | None, what: str) -> psycopg.Error:
    if result is None:
        return psycopg.OperationalError(what)
    message = (result.error_message or b"").decode("utf-8", "replace").strip() or what
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    error_class = psycopg.errors.lookup(sqlstate.decode()) if sqlstate else psycopg.Error
    return error_class(message)
