"""services/run's command line: usage errors, repeatable down, status of nothing."""

from __future__ import annotations

import os
from pathlib import Path

from tests.services.helpers import run


def test_unknown_server_is_a_usage_error(tmp_path: Path) -> None:
    result = run("up", "nosuchdb", "--dir", tmp_path)
    assert result.returncode == 2
    assert "nosuchdb" in result.stderr


def test_brokers_option_is_rejected_for_a_single_node_server(tmp_path: Path) -> None:
    result = run("up", "postgres", "--dir", tmp_path, "--brokers", "3")
    assert result.returncode == 2
    assert "--brokers is for kafka only" in result.stderr


def test_down_where_nothing_ever_ran_succeeds(tmp_path: Path) -> None:
    result = run("down", "postgres", "--dir", tmp_path)
    assert result.returncode == 0
    assert result.stdout == ""


def test_status_where_nothing_ever_ran_says_stopped_with_exit_3(tmp_path: Path) -> None:
    result = run("status", "mariadb", "--dir", tmp_path)
    assert (result.returncode, result.stdout) == (3, "STATUS=stopped\n")


def test_install_all_when_everything_is_installed_runs_neither_apt_nor_maven(
    tmp_path: Path,
) -> None:
    assert run("install-all").returncode == 0
    # With apt-get and mvn replaced by commands that fail, a second run must still succeed:
    # it found everything in place and called neither.
    for tool in ("apt-get", "mvn"):
        fake = tmp_path / tool
        fake.write_text(f"#!/bin/sh\necho {tool} must not run >&2\nexit 1\n")
        fake.chmod(0o755)
    result = run("install-all", env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr


def test_tls_option_is_rejected_for_a_server_that_cannot_serve_it(tmp_path: Path) -> None:
    result = run("up", "elasticsearch", "--dir", tmp_path, "--tls")
    assert result.returncode == 2
    assert "--tls is not supported for elasticsearch" in result.stderr
