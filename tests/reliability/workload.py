"""Writers on the source table, in a thread of their own, that survive the faults the
scenarios inject (a restarted or terminated Postgres): a failed transaction is retried on a
new connection; what it did or did not commit does not matter, as the check compares the
final table with the index.

``MixedWorkload``: random transactions of inserts, updates and deletes, a few changes each.
``SteadyWorkload``: a fixed rate of changes (inserts, updates, deletes in equal parts) over a
sliding window of ids, so an hour-long soak keeps the table (and the final check) bounded.
"""

from __future__ import annotations

import abc
import random
import threading
import time
from types import TracebackType
from typing import Any, Self

import psycopg

RETRY_S = 0.2  # pause before reconnecting while the server is down


class _Writer(abc.ABC):
    def __init__(self, dsn: str, table: str) -> None:
        self.dsn = dsn
        self.table = table
        self.changes = 0  # changes in committed transactions
        self.transactions = 0
        self.failures = 0  # transactions that failed on a fault and were given up
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="workload")
        self._conn: psycopg.Connection[Any] | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        if self._conn is not None:
            self._conn.close()
        if self.error is not None:
            raise RuntimeError(f"the workload failed: {self.error!r}") from self.error

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()  # a broken one too, or it warns when collected
            self._conn = psycopg.connect(self.dsn, connect_timeout=5)
        return self._conn

    def _transaction(self, statements: list[tuple[str, Any]], changes: int) -> None:
        try:
            conn = self._connection()
            with conn.transaction():
                for query, params in statements:
                    conn.execute(query.encode(), params)
        except psycopg.OperationalError:
            self.failures += 1
            if self._conn is not None:
                self._conn.close()
            self._stop.wait(RETRY_S)
            return
        self.changes += changes
        self.transactions += 1

    def _run(self) -> None:
        try:
            self.run()
        except BaseException as exc:
            self.error = exc

    @abc.abstractmethod
    def run(self) -> None:
        """The writer's loop, until ``_stop`` is set."""


INSERT = ("INSERT INTO {t} (id, name, qty, price, note, meta) "
          "SELECT g, 'name ' || g, g %% 1000, (g %% 100000) / 100.0, %s, "
          "jsonb_build_object('g', g, 'tags', jsonb_build_array('a', (g %% 7)::text)) "
          "FROM generate_series(%s::bigint, %s::bigint) g")
UPDATE = ("UPDATE {t} SET qty = qty + 1, note = %s, price = price + 0.01, ts = now() "
          "WHERE id BETWEEN %s AND %s")
DELETE = "DELETE FROM {t} WHERE id BETWEEN %s AND %s"


class MixedWorkload(_Writer):
    """Random small transactions mixing inserts, updates and deletes, about ``rate``
    changes per second (as fast as the server allows if it cannot)."""

    def __init__(self, dsn: str, table: str, *, seed: int, rate: float = 400.0,
                 first_id: int = 1) -> None:
        super().__init__(dsn, table)
        self.rng = random.Random(seed)
        self.rate = rate
        self.next_id = first_id

    def run(self) -> None:
        t = self.table
        rng = self.rng
        while not self._stop.is_set():
            statements: list[tuple[str, Any]] = []
            changes = 0
            for _ in range(rng.randint(1, 4)):
                kind = rng.random()
                if kind < 0.5 or self.next_id < 50:
                    n = rng.randint(1, 20)
                    statements.append((INSERT.format(t=t), (f"v{rng.random():.6f}",
                                                            self.next_id, self.next_id + n - 1)))
                    self.next_id += n
                    changes += n
                elif kind < 0.85:
                    lo = rng.randrange(1, self.next_id)
                    statements.append((UPDATE.format(t=t), (f"u{rng.random():.6f}", lo, lo + 9)))
                    changes += 10  # at most: rows deleted meanwhile are not there
                else:
                    lo = rng.randrange(1, self.next_id)
                    statements.append((DELETE.format(t=t), (lo, lo + 2)))
                    changes += 3
            self._transaction(statements, changes)
            self._stop.wait(changes / self.rate)  # pacing, not synchronisation


class SteadyWorkload(_Writer):
    """``rate`` changes per second in ``tick_s`` transactions, a third each inserts (at the
    top of the window), updates (inside it) and deletes (at its bottom once it is full)."""

    def __init__(self, dsn: str, table: str, *, rate: float, window: int = 50_000,
                 tick_s: float = 0.1) -> None:
        super().__init__(dsn, table)
        self.rate = rate
        self.window = window
        self.tick_s = tick_s
        self.lo = 1
        self.hi = 1  # next id to insert
        self.started = 0.0
        self.behind_s = 0.0  # how far the writer fell behind its schedule at worst

    def run(self) -> None:
        t = self.table
        per_tick = max(3, round(self.rate * self.tick_s))
        third = per_tick // 3
        self.started = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            statements: list[tuple[str, Any]] = []
            inserts = per_tick - 2 * third if self.hi - self.lo >= self.window else per_tick - third
            statements.append((INSERT.format(t=t), (f"s{tick}", self.hi, self.hi + inserts - 1)))
            if self.hi > self.lo:
                start = self.lo + (tick * 7919) % max(1, self.hi - self.lo)
                statements.append((UPDATE.format(t=t), (f"s{tick}", start, start + third - 1)))
            deletes = 0
            if self.hi - self.lo >= self.window:
                statements.append((DELETE.format(t=t), (self.lo, self.lo + third - 1)))
                deletes = third
            before = self.changes
            self._transaction(statements, inserts + third + deletes)
            if self.changes > before:
                self.hi += inserts
                self.lo += deletes
            tick += 1
            due = self.started + tick * self.tick_s
            now = time.monotonic()
            self.behind_s = max(self.behind_s, now - due)
            self._stop.wait(max(0.0, due - now))  # pacing to the schedule

    def achieved_rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.changes / elapsed if elapsed > 0 else 0.0
