"""A read-only view next to a live writer process never shows records whose checkpoint it
has not seen, and every record it shows is one the writer wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from log.embedded import EmbeddedLog

from .crash_writer import PLAIN, TX, value
from .test_crash import ROOT


def test_a_view_of_a_live_writer_shows_only_committed_records(tmp_path: Path) -> None:
    path = tmp_path / "log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.log.crash_writer", str(path), "7", "batch"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == "READY\n"  # its topics exist from here on
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep it unblocked
        view = EmbeddedLog(path, read_only=True)
        seen = {tp: 0 for tp in (PLAIN, *TX)}
        checks = 0
        stop = time.monotonic() + 2.0
        while time.monotonic() < stop:
            ends = {tp: view.end_offset(tp) for tp in TX}
            checkpoint = view.last_checkpoint("src")
            for i, tp in enumerate(TX):
                assert ends[tp] <= (checkpoint["ends"][i] if checkpoint else 0)
            for tp, at in list(seen.items()):
                for r in view.read(tp, at, max_records=500):
                    assert r.value is not None
                    assert r.value == value(r.offset, int(r.value.split(b"|")[1]))
                    seen[tp] = r.offset + 1
            checks += 1
        view.close()
        assert checks > 3 and seen[PLAIN] > 0
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()

