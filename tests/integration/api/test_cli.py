"""The API wired into ``changehub run`` and ``changehub status`` through the real CLI: the
running line names the API's address, ``status`` shows live states from it (and falls back
to the log when no hub answers), and a busy port leaves the hub running without its API."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.api.conftest import wait_for

CHANGEHUB = [sys.executable, "-m", "hub.cli"]
# A deadline for a hub process to come up: seconds on a quiet machine, but importing the
# connectors alone took 20 s at a load average of 30.
STARTUP_S = 180.0
ROOT = Path(__file__).resolve().parents[3]

PIPELINE = """
log: {{backend: embedded, path: ./log}}
api: {{listen: "127.0.0.1:{port}", token: "cli-t0ken"}}
sources:
  - {{name: legacy, type: sql_poll, url: "sqlite:///./legacy.db", table: orders,
     mode: incrementing, incrementing_column: id, interval: 100ms}}
sinks:
  - {{name: files, type: batch, topics: ["legacy.*"], path: ./exports, flush_interval: 100ms}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([*CHANGEHUB, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


class RunningCli:
    def __init__(self, cwd: Path, *options: str) -> None:
        self.cwd = cwd
        self.stderr = cwd / "hub.stderr"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.stderr.open("wb") as err:
            self.proc = subprocess.Popen([*CHANGEHUB, *options, "run", "pipeline.yaml"],
                                         cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                         stderr=err)

    def log(self) -> str:
        return self.stderr.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    con = sqlite3.connect(tmp_path / "legacy.db")
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    con.executemany("INSERT INTO orders VALUES (?, ?)", [(i, f"x{i}") for i in range(1, 41)])
    con.commit()
    con.close()
    return tmp_path


@pytest.fixture
def hub_on(workdir: Path) -> Iterator[tuple[RunningCli, int]]:
    port = free_port()
    (workdir / "pipeline.yaml").write_text(PIPELINE.format(port=port))
    running = RunningCli(workdir)
    try:
        yield running, port
    finally:
        running.stop()


def test_run_names_the_api_address_and_status_reads_it_live(
    hub_on: tuple[RunningCli, int],
) -> None:
    running, port = hub_on
    wait_for(lambda: f"API and status page on http://127.0.0.1:{port}" in running.log(),
             timeout=STARTUP_S, what="the running line with the API address")
    shown = [cli(running.cwd, "status", "-c", "pipeline.yaml")]

    def live_and_running() -> bool:
        shown[0] = cli(running.cwd, "status", "-c", "pipeline.yaml")
        out = shown[0].stdout
        return f"live from the hub at http://127.0.0.1:{port}" in out and "RUNNING" in out

    wait_for(live_and_running, timeout=60, what="status showing RUNNING live from the API")
    assert shown[0].returncode == 0, shown[0].stderr
    assert "legacy" in shown[0].stdout and "files" in shown[0].stdout
    assert running.stop() == 0
    after = cli(running.cwd, "status", "-c", "pipeline.yaml")
    assert after.returncode == 0, after.stderr
    assert "from the log" in after.stdout
    assert "0 records behind" in after.stdout


def test_status_of_another_pipeline_at_the_same_address_is_not_mixed_up(
    hub_on: tuple[RunningCli, int],
) -> None:
    running, port = hub_on
    wait_for(lambda: "API and status page on" in running.log(), timeout=STARTUP_S,
             what="the API up")
    other = running.cwd / "other"
    other.mkdir()
    (other / "pipeline.yaml").write_text(PIPELINE.format(port=port))
    shown = cli(other, "status", "-c", "pipeline.yaml")
    assert shown.returncode == 2, shown.stdout  # its own log does not exist yet
    text = " ".join(shown.stderr.split())
    assert "no changehub log at" in text
    assert "serves another pipeline" in text
    assert "legacy" not in shown.stdout


def test_status_with_the_wrong_token_says_so(hub_on: tuple[RunningCli, int]) -> None:
    running, port = hub_on
    wait_for(lambda: "API and status page on" in running.log(), timeout=STARTUP_S,
             what="the API up")
    (running.cwd / "other.yaml").write_text(
        PIPELINE.format(port=port).replace("cli-t0ken", "not-the-t0ken"))
    shown = cli(running.cwd, "status", "-c", "other.yaml")
    assert shown.returncode == 2
    assert "refused the token" in shown.stderr


def test_status_exits_1_and_names_a_failed_connector(workdir: Path) -> None:
    port = free_port()
    ghost = ('  - {name: ghost, type: sql_poll, url: "sqlite:///./legacy.db", table: missing,\n'
             "     mode: incrementing, incrementing_column: id}\n")
    text = PIPELINE.format(port=port).replace("sinks:\n", ghost + "sinks:\n")
    assert "ghost" in text
    (workdir / "pipeline.yaml").write_text(text)
    running = RunningCli(workdir)
    try:
        shown = [cli(workdir, "status", "-c", "pipeline.yaml")]

        def failed_shown() -> bool:
            shown[0] = cli(workdir, "status", "-c", "pipeline.yaml")
            return "live from the hub" in shown[0].stdout and "FAILED" in shown[0].stdout

        wait_for(failed_shown, timeout=STARTUP_S, what="status showing ghost FAILED")
        assert shown[0].returncode == 1, shown[0].stdout + shown[0].stderr
        assert "FAILED: source ghost" in shown[0].stderr
        assert "legacy" not in shown[0].stderr  # the healthy ones are not named
    finally:
        running.stop()


def test_a_busy_api_port_leaves_the_hub_running_without_its_api(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        (workdir / "pipeline.yaml").write_text(PIPELINE.format(port=port))
        running = RunningCli(workdir)
        try:
            wait_for(lambda: "REST API not started" in running.log(), timeout=STARTUP_S,
                     what="the warning")
            wait_for(lambda: "changehub running" in running.log(), timeout=STARTUP_S,
                     what="the running line")
            assert running.proc.poll() is None
            wait_for(lambda: any((workdir / "exports").rglob("*.jsonl")),
                     what="the pipeline exporting without its API")
        finally:
            assert running.stop() == 0
    assert "API and status page on" not in running.log()


def test_json_logs_carry_the_api_address_and_one_line_per_state_change(workdir: Path) -> None:
    port = free_port()
    (workdir / "pipeline.yaml").write_text(PIPELINE.format(port=port))
    running = RunningCli(workdir, "--log-format", "json")

    def exported() -> int:  # records in the data files (the manifest is JSON Lines too)
        return sum(len(f.read_text().splitlines())
                   for f in (workdir / "exports" / "legacy.orders").rglob("*.jsonl"))

    try:
        wait_for(lambda: '"url"' in running.log(), timeout=STARTUP_S, what="the API line")
        wait_for(lambda: exported() == 40, timeout=60, what="the 40 rows exported")
    finally:
        assert running.stop() == 0
    text = running.log()
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    [api] = [x for x in lines if x.get("url")]
    assert api["url"] == f"http://127.0.0.1:{port}"
    states = [(x["connector"], x["state"]) for x in lines if x["logger"] == "changehub.state"]
    assert ("files", "RUNNING") in states and ("files", "STOPPED") in states
    # where each sink starts reading is logged with topic, partition and offset ...
    assert any("legacy.orders[0]" in x["msg"] and x["msg"].startswith("sink files")
               for x in lines)
    # ... and nothing per record: 40 rows went through, no line names one of them
    assert len(lines) < 40, f"{len(lines)} log lines for 40 records"
    assert not re.search(r"\bx\d+\b", text), "a record's value is in the log"
    assert "cli-t0ken" not in text


def test_status_watch_refreshes_in_a_terminal_until_interrupted(
    hub_on: tuple[RunningCli, int],
) -> None:
    # --watch redraws in place on a terminal: run it on a pseudo-terminal, change a
    # connector's state through the API, and the same running `status` must show it
    import fcntl
    import pty
    import urllib.request

    running, port = hub_on
    wait_for(lambda: f"API and status page on http://127.0.0.1:{port}" in running.log(),
             timeout=STARTUP_S, what="the running line with the API address")
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "TERM": "xterm"}
    # a suite started in the background (`scripts/test &`) has SIGINT ignored, and children
    # inherit that: the watcher gets Python's own Ctrl-C handler back, as in a terminal
    main = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
            " sys.argv = ['changehub', 'status', '-c', 'pipeline.yaml', '--watch'];"
            " runpy.run_module('hub.cli', run_name='__main__')")
    watch = subprocess.Popen([sys.executable, "-c", main],
                             cwd=running.cwd, env=env, stdin=follower, stdout=follower,
                             stderr=follower, close_fds=True)
    os.close(follower)
    fcntl.fcntl(leader, fcntl.F_SETFL, fcntl.fcntl(leader, fcntl.F_GETFL) | os.O_NONBLOCK)
    screen = bytearray()

    def shown() -> str:
        try:
            while chunk := os.read(leader, 65536):
                screen.extend(chunk)
        except (BlockingIOError, OSError):
            pass
        return screen.decode(errors="replace")

    try:
        wait_for(lambda: "live from the hub" in shown() and "RUNNING" in shown(),
                 timeout=STARTUP_S, what="status --watch showing the hub live")
        seen = len(screen)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/connectors/files/pause", method="PUT",
            headers={"Authorization": "Bearer cli-t0ken"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status in (200, 202, 204)
        wait_for(lambda: shown() and b"PAUSED" in screen[seen:], timeout=60,
                 what="the watching status redrawn with the sink PAUSED")
        assert watch.poll() is None, "status --watch stopped by itself"
        watch.send_signal(signal.SIGINT)
        # it stops on the interrupt (interpreter shutdown takes seconds at a high load)
        assert watch.wait(STARTUP_S) is not None
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(30)
        os.close(leader)
