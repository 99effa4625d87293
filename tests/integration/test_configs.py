"""Every example pipeline in configs/ is exercised by a test; the serverless ones run here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_quickstart_pipeline_runs_twice_and_only_new_rows_flow(tmp_path: Path) -> None:
    config = str(ROOT / "configs" / "quickstart.yaml")
    helper = str(ROOT / "scripts" / "quickstart.py")
    for rows in (3000, 700):
        res = run(tmp_path, helper, "make", "--rows", str(rows))
        assert res.returncode == 0, res.stderr
        res = run(tmp_path, "-m", "hub.cli", "run", config, "--until-caught-up")
        assert res.returncode == 0, res.stderr
        # report() exits non-zero when the warehouse or the files differ from the source.
        res = run(tmp_path, helper, "report")
        assert res.returncode == 0, res.stdout + res.stderr
    assert "source rows (SQLite)          : 3700" in res.stdout
    assert "rows in DuckDB warehouse      : 3700" in res.stdout
    assert "change events in Parquet files: 3700" in res.stdout


def test_every_example_config_is_exercised_by_a_test() -> None:
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    missing = [p.name for p in sorted((ROOT / "configs").glob("*.yaml")) if p.name not in tests]
    assert not missing, f"configs without a test naming them: {missing}"
