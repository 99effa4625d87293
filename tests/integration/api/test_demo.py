"""``changehub demo`` end to end: real PostgreSQL and OpenSearch through services/run, a live
writer, the mirror with nested order documents, the status page answering while it runs,
and an index equal to the tables once the writer stops and the hub caught up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.integration.api.conftest import wait_for

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(900)  # two servers start first: minutes on a busy machine
def test_demo_mirrors_a_live_shop_into_search_with_nested_orders() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "demo", "--listen", "127.0.0.1:0", "--for", "12"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    err_lines: list[str] = []

    def drain() -> None:
        assert proc.stderr is not None
        err_lines.extend(iter(proc.stderr.readline, ""))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("status page: http" in line for line in err_lines),
                 timeout=600, what="the demo's status page line")
        page = next(line for line in err_lines if "status page: http" in line)
        url = re.search(r"(http://\S+)/", page)
        assert url, page
        status = httpx.get(f"{url.group(1)}/status", timeout=10).json()
        assert {c["name"] for c in status["connectors"]} == {"shop", "search"}
        assert any("try: curl" in line for line in err_lines)
        stdout, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        for stream in (proc.stdout, proc.stderr):  # a failed run must not leak its pipes
            if stream is not None:
                stream.close()
    assert proc.returncode == 0, stdout + "".join(err_lines[-30:])
    assert "the index equals the tables" in stdout
    lines = re.search(r"order lines: (\d+) in Postgres, (\d+) embedded", stdout)
    assert lines and int(lines.group(1)) > 0 and lines.group(1) == lines.group(2)
