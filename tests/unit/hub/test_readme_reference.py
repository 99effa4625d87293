"""README.md's configuration reference is generated from the models: it must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_readme_configuration_reference_matches_the_models() -> None:
    res = subprocess.run(
        [sys.executable, "scripts/config_reference.py", "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert res.returncode == 0, res.stderr + res.stdout
