"""The fault-injection scenarios. Each one builds a fresh pipeline (Postgres table ->
``changehub run`` -> OpenSearch index) on the rig's servers, runs a mixed workload while it
injects its fault, stops the workload, waits for the hub to catch up and compares the index
with the table row by row. Each has a quick size (the CI subset in test_reliability.py) and a
full size (``scripts/torture``); the result is recorded in bench/RELIABILITY.md.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.reliability.check import Verdict, converge
from tests.reliability.report import Result
from tests.reliability.rig import Pipeline, ScenarioError, Servers, free_port, wait_until
from tests.reliability.workload import INSERT, MixedWorkload

# The catch-up after a scenario may take as long as the sink makes progress, but no more
# than IDLE_S without any, nor CAP_S in all.
IDLE_S = 120.0


@dataclass(frozen=True)
class Size:
    quick: bool

    @property
    def name(self) -> str:
        return "quick" if self.quick else "full"

    def pick(self, quick: float, full: float) -> float:
        return quick if self.quick else full


def hold(p: Pipeline, seconds: float) -> None:
    """Let a fault last ``seconds`` (its duration, not a synchronisation), or until the hub
    exits, which the caller then reports."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0 and p.hub is not None and p.hub.poll() is None:
        time.sleep(min(0.5, left))


def seed_rows(p: Pipeline, count: int) -> None:
    """Rows present before the hub first starts: its snapshot reads them."""
    p.execute(INSERT.format(t=p.table), ("seed", 1_000_000_000, 1_000_000_000 + count - 1))


def finish(p: Pipeline, scenario: str, size: Size, faults: int, changes: int,
           started: float, notes: str = "") -> Result:
    """Stop the workload's effects, wait for the hub to catch up, compare, stop the hub."""
    verdict: Verdict = converge(p, IDLE_S, cap_s=size.pick(600, 3600))
    if verdict.reason:
        notes = f"{notes}; catch-up ended: {verdict.reason}".lstrip("; ")
    code = p.stop_hub()
    if code != 0:
        notes = f"{notes}; the hub exited {code} on SIGTERM".lstrip("; ")
    return Result(
        scenario=scenario, size=size.name, faults=faults, records=verdict.records,
        changes=changes, lost=len(verdict.lost), extra=len(verdict.extra),
        divergent=len(verdict.divergent), seconds=time.monotonic() - started,
        ok=verdict.equal and code == 0, notes=notes,
        samples=(verdict.lost[:3] + verdict.extra[:3] + verdict.divergent[:3]))


@contextlib.contextmanager
def pipeline(servers: Servers, workdir: Path, **options: object) -> Iterator[Pipeline]:
    p = Pipeline.create(servers, workdir, **options)  # type: ignore[arg-type]
    try:
        yield p
    finally:
        p.close()


def kill9(servers: Servers, workdir: Path, size: Size) -> Result:
    """kill -9 of the hub at random moments (snapshot, streaming, flushes) under load."""
    kills = int(size.pick(5, 50))
    rng = random.Random(9)
    started = time.monotonic()
    with pipeline(servers, workdir) as p:
        seed_rows(p, int(size.pick(2_000, 20_000)))
        with MixedWorkload(servers.postgres.dsn, p.table, seed=1,
                           rate=size.pick(800, 1500)) as work:
            # One kill in the initial snapshot (which starts over: an exact snapshot cannot
            # resume), then let it finish, so that the other kills land in streaming.
            p.start_hub()
            time.sleep(rng.uniform(0.0, 1.0))  # the random moment
            p.kill_hub()
            p.start_hub()
            wait_until(lambda: p.log_count("streaming from slot") > 0 or not p.alive(),
                       "the snapshot to finish", 600, poll_s=0.2)
            for _ in range(kills - 1):
                if p.hub is None or p.hub.poll() is not None:
                    p.start_hub()
                time.sleep(rng.uniform(0.0, size.pick(1.5, 3.0)))  # the random moment
                p.assert_alive()
                p.kill_hub()
        p.start_hub()
        return finish(p, "kill9", size, kills, work.changes, started,
                      f"1 kill in the snapshot, {kills - 1} streaming; "
                      f"{work.failures} workload transactions failed")


def postgres_restart(servers: Servers, workdir: Path, size: Size) -> Result:
    """PostgreSQL stopped and started (fast shutdown) under the running hub, and its
    walsender killed with pg_terminate_backend; the hub reconnects by itself."""
    restarts = int(size.pick(1, 5))
    terminations = int(size.pick(2, 10))
    started = time.monotonic()
    with pipeline(servers, workdir) as p:
        seed_rows(p, 1_000)
        p.start_hub()
        with MixedWorkload(servers.postgres.dsn, p.table, seed=2, rate=600) as work:
            for _ in range(restarts):
                wait_for_walsender(servers, p)
                servers.restart_postgres(down_s=size.pick(1.0, 5.0))
                p.assert_alive()
            for _ in range(terminations):
                pid = wait_for_walsender(servers, p)
                servers.superuser("SELECT pg_terminate_backend(%s)", (pid,))
                p.assert_alive()
            wait_for_walsender(servers, p)
        return finish(p, "postgres-restart", size,
                      restarts + terminations, work.changes, started,
                      f"{restarts} restarts, {terminations} pg_terminate_backend")


def wait_for_walsender(servers: Servers, p: Pipeline, deadline_s: float = 90) -> int:
    """The pid of the hub's walsender once its slot is active again."""
    pids: list[int] = []

    def active() -> bool:
        p.assert_alive()
        try:
            rows = servers.superuser("SELECT active_pid FROM pg_replication_slots "
                                     "WHERE slot_name = %s AND active", (p.name,))
        except Exception:  # the server is still starting
            return False
        pids[:] = [r[0] for r in rows if r[0] is not None]
        return bool(pids)

    wait_until(active, "the hub's replication slot to be active", deadline_s, poll_s=0.2)
    return pids[0]


def engine_stopped(servers: Servers, workdir: Path, size: Size) -> Result:
    """The search engine stopped for a while (past the sink's retry_timeout_s in the full
    run, so the hub restarts the sink), then started again on the same data."""
    down_s = size.pick(8, 180)
    started = time.monotonic()
    options = ({"request_timeout_s": 30.0, "retry_timeout_s": 10.0} if size.quick
               else {"request_timeout_s": 30.0, "retry_timeout_s": 60.0})
    with pipeline(servers, workdir, **options) as p:
        seed_rows(p, 1_000)
        p.start_hub()
        with MixedWorkload(servers.postgres.dsn, p.table, seed=3, rate=600) as work:
            wait_until(lambda: count_docs(p) > 0, "the first documents", 60)
            servers.stop_engine()
            try:
                hold(p, down_s)
                p.assert_alive()
            finally:
                servers.start_engine()
        return finish(p, "engine-stop", size, 1, work.changes, started,
                      f"down {down_s:.0f} s")


def count_docs(p: Pipeline) -> int:
    from tests.reliability.check import index_count
    try:
        return index_count(p)
    except Exception:  # the index is being created
        return 0


class SmallDisk:
    """A size-limited directory: a loop-mounted ext4 image (root), else tmpfs with size=."""

    def __init__(self, mountpoint: Path, size_mb: int) -> None:
        self.mountpoint = mountpoint
        self.image = mountpoint.with_suffix(".img")
        self.size_mb = size_mb
        self.kind = ""

    def __enter__(self) -> SmallDisk:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(self.size_mb << 20)
        made = subprocess.run(["mkfs.ext4", "-q", "-F", str(self.image)], capture_output=True,
                              check=False)
        if made.returncode == 0 and subprocess.run(
                ["mount", "-o", "loop", str(self.image), str(self.mountpoint)],
                capture_output=True, check=False).returncode == 0:
            self.kind = f"loop-mounted ext4 of {self.size_mb} MB"
            return self
        self.image.unlink(missing_ok=True)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m",
                                  "tmpfs", str(self.mountpoint)], capture_output=True,
                                 text=True, check=False)
        if mounted.returncode != 0:
            raise ScenarioError("cannot make a size-limited directory (needs root for "
                                  f"mount): {mounted.stderr.strip()}")
        self.kind = f"tmpfs of {self.size_mb} MB"
        return self

    def fill(self) -> Path:
        """Fill the file system to the last block; returns the ballast file."""
        ballast = self.mountpoint / "ballast"
        with open(ballast, "wb") as f:
            block = b"\0" * (1 << 20)
            with contextlib.suppress(OSError):
                while True:
                    f.write(block)
                    f.flush()
            with contextlib.suppress(OSError):
                while True:  # the last partial megabyte
                    f.write(b"\0" * 4096)
                    f.flush()
        return ballast

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True, check=False)
        self.image.unlink(missing_ok=True)


DISK_FULL_MESSAGE = "the disk is full"


def disk_full(servers: Servers, workdir: Path, size: Size) -> Result:
    """The log's file system fills up: the hub must stop writing with a clear error (the
    connectors that hit it go to RETRYING saying the disk is full, the process stays up,
    nothing is lost or corrupted) and, once space is freed, carry on by itself: the log
    undoes the writes it could not finish, so a full disk is retried with backoff
    (hub.errors.LogFullError). A connector that went to FAILED instead fails the scenario
    (it is then restarted, as an operator would, so that the comparison still runs)."""
    full_s = size.pick(5, 60)
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    with SmallDisk(workdir / "disk", int(size.pick(64, 256))) as disk, \
            pipeline(servers, workdir, log_dir=disk.mountpoint / "log",
                     segment_bytes="4MB", api_port=free_port()) as p:
        seed_rows(p, 1_000)
        p.start_hub()
        with MixedWorkload(servers.postgres.dsn, p.table, seed=4, rate=800) as work:
            wait_until(lambda: count_docs(p) > 0, "the first documents", 60)
            ballast = disk.fill()
            try:
                wait_until(lambda: DISK_FULL_MESSAGE in p.log_tail(20_000)
                           or p.hub is None or p.hub.poll() is not None,
                           "the hub to report the full disk", 120, poll_s=0.2)
                p.assert_alive()
                hold(p, full_s)
                p.assert_alive()
                states = {c["name"]: c["state"] for c in p.api("GET", "/connectors")}
            finally:
                ballast.unlink()
            # back off at most 60 s (hub.backoff), then a retry finds the space
            wait_until(lambda: all(c["state"] in ("RUNNING", "FAILED")
                                   for c in p.api("GET", "/connectors")),
                       "every connector running again after space was freed", 120, poll_s=0.5)
            connectors = p.api("GET", "/connectors")
            restarted = p.restart_failed_connectors()
        message = next((line for line in p.log_tail(200_000).splitlines()
                        if DISK_FULL_MESSAGE in line), "")
        retries = ", ".join(f"{c['name']} {c['retries']}" for c in connectors if c["retries"])
        result = finish(p, "disk-full", size, 1, work.changes, started,
                        f"{disk.kind}, full for {full_s:.0f} s; states while full: "
                        f"{', '.join(f'{n} {s}' for n, s in states.items())}; retries: "
                        f"{retries or 'none'}; FAILED (restarted by hand): "
                        f"{', '.join(restarted) or 'none'}; the hub said: {message[:200]}")
        result.ok = result.ok and not restarted
        return result


def frozen(servers: Servers, workdir: Path, size: Size) -> Result:
    """SIGSTOP past every timeout (Postgres' wal_sender_timeout drops the frozen walsender,
    the engine's request timeout passes), then SIGCONT: the hub must carry on by itself."""
    freeze_s = size.pick(12, 90)
    started = time.monotonic()
    options = ({"request_timeout_s": 8.0, "retry_timeout_s": 10.0} if size.quick
               else {"request_timeout_s": 30.0, "retry_timeout_s": 60.0})
    timeout = "3s" if size.quick else "60s"
    servers.set_wal_sender_timeout(timeout)
    try:
        with pipeline(servers, workdir, **options) as p:
            seed_rows(p, 1_000)
            p.start_hub()
            freezes = int(size.pick(1, 3))
            with MixedWorkload(servers.postgres.dsn, p.table, seed=5, rate=600) as work:
                for _ in range(freezes):
                    wait_for_walsender(servers, p)
                    p.signal_hub(signal.SIGSTOP)
                    try:
                        hold(p, freeze_s)
                    finally:
                        p.signal_hub(signal.SIGCONT)
                    p.assert_alive()
            return finish(p, "sigstop", size, freezes,
                          work.changes, started,
                          f"frozen {freeze_s:.0f} s; wal_sender_timeout {timeout}, "
                          f"request_timeout_s {options['request_timeout_s']}")
    finally:
        servers.set_wal_sender_timeout("60s")


def network_cut(servers: Servers, workdir: Path, size: Size) -> Result:
    """The path between the hub and Postgres, then the engine, then both, cut through the
    TCP proxy: first silently (a partition: bytes stop, nothing is refused), then with
    resets (connections die, reconnects are refused), each for a while, then restored."""
    cut_s = size.pick(6, 90)
    started = time.monotonic()
    options = ({"request_timeout_s": 30.0, "retry_timeout_s": 10.0} if size.quick
               else {"request_timeout_s": 30.0, "retry_timeout_s": 60.0})
    servers.set_wal_sender_timeout("5s" if size.quick else "60s")
    faults = 0
    try:
        with pipeline(servers, workdir, **options) as p:
            seed_rows(p, 1_000)
            p.start_hub()
            with MixedWorkload(servers.postgres.dsn, p.table, seed=6, rate=600) as work:
                for mode in ("stall", "reset"):
                    for proxies in ((servers.pg_proxy,), (servers.engine_proxy,),
                                    (servers.pg_proxy, servers.engine_proxy)):
                        if size.quick and len(proxies) == 1:
                            continue  # the quick run cuts both paths at once only
                        wait_for_walsender(servers, p)
                        for proxy in proxies:
                            proxy.cut(mode)
                        faults += 1
                        try:
                            hold(p, cut_s)
                        finally:
                            for proxy in proxies:
                                proxy.restore()
                        p.assert_alive()
            return finish(p, "network-cut", size,
                          faults, work.changes, started,
                          f"cuts of {cut_s:.0f} s, stalled and reset")
    finally:
        servers.pg_proxy.restore()
        servers.engine_proxy.restore()
        servers.set_wal_sender_timeout("60s")


SCENARIOS: dict[str, Callable[[Servers, Path, Size], Result]] = {
    "kill9": kill9,
    "postgres-restart": postgres_restart,
    "engine-stop": engine_stopped,
    "disk-full": disk_full,
    "sigstop": frozen,
    "network-cut": network_cut,
}


def run_scenario(name: str, servers: Servers, workdir: Path, size: Size) -> Result:
    """Run one scenario; a scenario that cannot finish is a failed result, not a crash."""
    started = time.monotonic()
    try:
        result = SCENARIOS[name](servers, workdir / name, size)
    except Exception as exc:  # recorded as a failed run, with what happened
        result = Result(scenario=name, size=size.name, faults=0, records=0, changes=0, lost=0,
                        extra=0, divergent=0, seconds=time.monotonic() - started, ok=False,
                        notes=f"did not finish: {type(exc).__name__}: {str(exc)[-1500:]}")
    if result.ok:
        shutil.rmtree(workdir / name, ignore_errors=True)
    else:  # keep the hub's log for whoever reads the failure
        result.notes += f" (hub log: {workdir / name / 'hub.log'})"
    return result
