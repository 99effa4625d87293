"""The search benchmark's engine warm-up: when a JVM engine counts as warm, and the JIT
compilers' CPU read from /proc (bench/search_bench.py)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "search_bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("search_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(engine_s: float, jit_s: float, rows: int = 50_000) -> dict[str, Any]:
    return {"rows": rows, "cpu_s": {"engine": engine_s},
            "cpu_s_per_1000_docs": {"engine": round(engine_s * 1000 / rows, 3)},
            "engine_jit_cpu_s": jit_s}


def test_warm_only_when_the_jit_is_quiet_and_the_cost_steady(bench: ModuleType) -> None:
    # Steady cost per document, JIT at 10% of the engine's CPU: warm.
    assert bench.is_warm(run(5.0, 0.5), run(5.2, 0.5))
    # The compilers still busy (40% of the round's CPU): not warm, however steady.
    assert not bench.is_warm(run(5.0, 2.0), run(5.0, 2.0))
    # Quiet JIT, but the cost per document fell by a third since the round before: not yet.
    assert not bench.is_warm(run(7.5, 0.5), run(5.0, 0.5))
    # A round that used no engine CPU at all proves nothing.
    assert not bench.is_warm(run(5.0, 0.0), run(0.0, 0.0))


def test_engine_cpu_without_jit(bench: ModuleType) -> None:
    assert bench.engine_cpu_without_jit(run(9.0, 4.0, rows=100_000)) == 0.05


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_jit_cpu_is_read_from_a_real_jvm(bench: ModuleType, tmp_path: Path) -> None:
    """A JVM made to compile a hot loop shows CPU in its compiler threads; a process with
    no such threads (this Python) shows none."""
    java = _java()
    if java is None:
        pytest.skip("no JDK installed")
    source = tmp_path / "Hot.java"
    source.write_text(
        "public class Hot { public static void main(String[] a) throws Exception {"
        " long s = 0; for (int r = 0; r < 20; r++) for (int i = 0; i < 1_000_000; i++)"
        " s += Integer.toString(i ^ r).hashCode();"
        " System.out.println(s); System.out.flush(); Thread.sleep(60_000); } }"
    )
    with subprocess.Popen([java, str(source)], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            process.stdout.readline()  # the loop is done: compiled by now
            assert bench.jit_cpu_s(process.pid) > 0
        finally:
            process.kill()
    assert bench.jit_cpu_s(os.getpid()) == 0


def _java() -> str | None:
    for candidate in (shutil.which("java"), "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"):
        if candidate and Path(candidate).exists():
            return candidate
    return None
