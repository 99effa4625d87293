"""kill -9 at random moments: every acknowledged record survives, nothing is invented, and a
checkpoint and its records survive (or vanish) together."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from log.embedded import EmbeddedLog

from .crash_writer import PLAIN, TX, value
from .helpers import read_all

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("LOG_CRASH_KILLS", "24"))  # for the batch policy; others get a third


def run_and_kill(path: Path, seed: int, rng: random.Random, policy: str) -> list[str]:
    """Start the writer, let it append for a random while, SIGKILL it; its acknowledgements."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.log.crash_writer", str(path), str(seed), policy],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if first != "READY\n":
        proc.kill()
        raise AssertionError(f"writer did not start: {first!r} {proc.communicate()[1]}")
    try:
        proc.wait(timeout=rng.uniform(0.01, 0.4))
        raise AssertionError(f"writer exited by itself: {proc.communicate()[1]}")
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return out.splitlines()


def check(path: Path, acks: list[str], last_ckpt: list[int] | None) -> tuple[list[int] | None, int]:
    plain_acked = 0
    group_acked = None
    for line in acks:
        kind, *nums = line.split()
        if kind == "A":
            plain_acked = max(plain_acked, int(nums[0]) + int(nums[1]))
        elif kind == "C":
            last_ckpt = [int(n) for n in nums]
        elif kind == "G":
            group_acked = int(nums[0])
    log = EmbeddedLog(path, background_jobs=False)
    try:
        assert log.end_offset(PLAIN) >= plain_acked, "an acknowledged append was lost"
        committed = log.committed_offsets("g").get(PLAIN)
        if group_acked is not None:
            assert committed is not None and committed >= group_acked, "a group commit was lost"
        if committed is not None:
            assert committed <= log.end_offset(PLAIN)
        checkpoint = log.last_checkpoint("src")
        if last_ckpt is not None:
            assert checkpoint is not None, "an acknowledged checkpoint was lost"
            assert all(e >= a for e, a in zip(checkpoint["ends"], last_ckpt, strict=True))
        if checkpoint is not None:  # possibly one that was durable but not yet acknowledged
            last_ckpt = checkpoint["ends"]
        for i, tp in enumerate(TX):
            # the tail past the checkpoint went; what it covers is all there
            assert log.end_offset(tp) == (last_ckpt[i] if last_ckpt else 0)
        for tp in (PLAIN, *TX):
            for r in read_all(log, tp):
                assert r.value is not None
                size = int(r.value.split(b"|")[1])
                assert r.value == value(r.offset, size), f"{tp}@{r.offset} is not what was written"
        return last_ckpt, log.end_offset(PLAIN)
    finally:
        log.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("policy", "kills"), [("batch", KILLS), ("interval", KILLS // 3), ("never", KILLS // 3)]
)
def test_sigkill_at_random_moments_loses_nothing_acknowledged(
    tmp_path: Path, policy: str, kills: int
) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    path = tmp_path / "log"
    last_ckpt: list[int] | None = None
    progress = 0
    for kill in range(kills):
        acks = run_and_kill(path, rng.randrange(2**31), rng, policy)
        last_ckpt, end = check(path, acks, last_ckpt)
        assert end >= progress, f"kill {kill}: the log went back from {progress} to {end}"
        progress = end
    assert progress > 0, "the writer never got an append done"
