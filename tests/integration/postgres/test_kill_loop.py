"""kill -9 at random moments while a mixed workload runs: every committed change is in the
log exactly once, in commit order."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import psycopg
import pytest

from tests.integration.postgres.pipeline import (
    Database,
    Pipeline,
    config,
    table_state,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 20
BIG = "INSERT INTO ledger (note) SELECT 'big' FROM generate_series(1, 250)"
SMALL = "INSERT INTO ledger (note) SELECT 'small' FROM generate_series(1, %s)"
REKEY = "UPDATE accounts SET id = %s WHERE id = (SELECT max(id) FROM accounts)"
SPREAD = "UPDATE accounts SET balance = balance - 1 WHERE id BETWEEN %s AND %s"
ROOT = Path(__file__).resolve().parents[3]


class Workload:
    """One connection committing a mix of transactions: small and large ledger inserts (more
    than a batch, so that kills land inside split transactions), account inserts, updates,
    deletes and key changes."""

    def __init__(self, db: Database, seed: int) -> None:
        self._db = db
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.commits = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def _run(self) -> None:
        rng = self._rng
        try:
            with psycopg.connect(self._db.dsn, autocommit=True) as conn:
                next_account = 10_000
                while not self._stop.is_set():
                    roll = rng.random()
                    with conn.transaction():
                        if roll < 0.05:
                            conn.execute(BIG)
                        elif roll < 0.55:
                            conn.execute(SMALL, (rng.randint(1, 5),))
                            conn.execute(
                                "UPDATE accounts SET balance = balance + 1 WHERE id = %s",
                                (rng.randint(1, 300),),
                            )
                        elif roll < 0.7:
                            conn.execute(
                                "DELETE FROM accounts WHERE id = %s", (rng.randint(1, 300),)
                            )
                            conn.execute("INSERT INTO accounts VALUES (%s, 0)", (next_account,))
                            next_account += 1
                        elif roll < 0.8:
                            conn.execute(REKEY, (next_account,))
                            next_account += 1
                        else:
                            lo = rng.randint(1, 290)
                            conn.execute(SPREAD, (lo, lo + 10))
                    self.commits += 1
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        if self.error is not None:
            raise self.error


def wait_for_appends(process: subprocess.Popen[bytes], count: int, deadline_s: float) -> bool:
    """Block until the source process reports ``count`` durable batches (or fail); whether
    one of them came after the initial snapshot had finished."""
    assert process.stdout is not None
    deadline = time.monotonic() + deadline_s
    seen = 0
    streaming = False
    while seen < count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([process.stdout], [], [], left)[0]:
            raise AssertionError(f"the source made no progress in {deadline_s:.0f} s")
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"the source process exited with {process.wait()}")
        streaming = streaming or line.strip() == b"appended streaming"
        seen += 1
    return streaming


def test_kill_9_at_random_moments_loses_and_repeats_nothing(db: Database, log_dir: Path) -> None:
    db.execute("CREATE TABLE ledger (id bigserial PRIMARY KEY, note text)")
    db.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
    db.execute("INSERT INTO ledger (note) SELECT 'initial' FROM generate_series(1, 6000)")
    db.execute("INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 300) g")
    cfg = config(
        db,
        tables=["public.ledger", "public.accounts"],
        snapshot_chunk_size=500,
        max_batch_events=100,
        heartbeat_interval="500ms",
    )
    rng = random.Random(4)
    workload = Workload(db, seed=5)
    command = [
        sys.executable,
        "-m",
        "tests.integration.postgres.run_source",
        json.dumps(cfg.model_dump()),
        str(log_dir),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    kills = 0
    snapshot_done = False
    try:
        while kills < KILLS:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE)
            try:
                if snapshot_done and not workload.started:
                    # The first kills land in the snapshot, quietly: it reads exactly the
                    # 6,000 initial rows (a resumed snapshot would read the workload's too).
                    workload.start()
                # Each run must get somewhere before it is killed at a random moment after.
                if wait_for_appends(process, rng.randint(1, 4), deadline_s=60):
                    snapshot_done = True
                time.sleep(rng.uniform(0.0, 0.5))  # a random moment, not a synchronisation
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait()
                if process.stdout is not None:
                    process.stdout.close()
            kills += 1
        assert snapshot_done and workload.started, "the snapshot never finished"
        workload.stop()
        assert workload.commits > 50
        db.execute("INSERT INTO accounts VALUES (999999, 0)")  # the marker
        p = Pipeline(log_dir, cfg)
        try:
            p.start()

            # The backlog left by the kills grows with the machine's speed (the workload keeps
            # committing): drain it in runs of batches, rebuilding the table from the log only
            # between runs, not after every batch of 100.
            def drained() -> bool:
                for _ in range(200):
                    if p.step() is None:
                        break
                return 999999 in p.state("shop.public.accounts")

            p.run_until(drained, "the marker", 300)
            verify(p, db)
        finally:
            p.close()
    finally:
        if workload.error is None and workload.started:
            workload.stop()


def verify(p: Pipeline, db: Database) -> None:
    # The ledger only grows, one writer: its ids are in commit order, each exactly once.
    ledger = [e["after"]["id"] for e in p.events("shop.public.ledger")]
    assert ledger == [r[0] for r in db.rows("SELECT id FROM ledger ORDER BY id")]
    # Accounts are inserted, updated, deleted and re-keyed: the log rebuilds the table.
    assert p.state("shop.public.accounts") == table_state(db, "SELECT id, balance FROM accounts")
    # No streamed event twice, and every transaction whole: orders 1..n without a hole.
    orders: dict[int, list[int]] = defaultdict(list)
    seen: Counter[tuple[int, int]] = Counter()
    for topic in ("shop.public.ledger", "shop.public.accounts"):
        for e in p.events(topic):
            if e["transaction"] is not None:
                position = (e["source"]["commit_lsn"], e["transaction"]["total_order"])
                seen[position] += 1
                orders[position[0]].append(position[1])
    assert max(seen.values()) == 1
    for commit_lsn, numbers in orders.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), hex(commit_lsn)
    reads = Counter(e["after"]["id"] for e in p.events("shop.public.ledger") if e["op"] == "r")
    assert set(reads.values()) == {1} and len(reads) == 6000
