"""Running ``services/run`` from the tests of services/ itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fixtures.services import RUN, parse_facts

__all__ = ["parse_facts", "run"]


def run(
    *args: str | Path, timeout: float = 900.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``services/run ARGS`` with its exit code, stdout and stderr, whatever the outcome."""
    return subprocess.run(
        [str(RUN), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
