from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.errors import LogLockedError

from .conftest import OpenLog


def test_a_second_open_in_the_same_process_is_refused(open_log: OpenLog) -> None:
    open_log()
    with pytest.raises(LogLockedError, match="already open here"):
        open_log()


def test_another_process_is_refused_with_our_pid(open_log: OpenLog, tmp_path: Path) -> None:
    open_log()
    code = (
        "import sys; from pathlib import Path; from log.embedded import EmbeddedLog\n"
        "from hub.errors import LogLockedError\n"
        "try:\n    EmbeddedLog(Path(sys.argv[1]), background_jobs=False)\n"
        "except LogLockedError as e:\n    print(e); sys.exit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "log")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert f"process {os.getpid()}" in proc.stdout


def test_the_lock_is_released_on_close(open_log: OpenLog) -> None:
    open_log().close()
    open_log().close()
