"""bench/pg_bench.py's latency writer and its references: the writer has connections enough
for the rate, pgbench's report is read right, and the disk probe measures both kinds of
fdatasync."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "pg_bench.py"

# pgbench 15's report for a rate-limited run, as the latency bench reads it
REPORT = """\
transaction type: /tmp/insert.sql
scaling factor: 1
query mode: simple
number of clients: 34
number of threads: 2
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 99871
number of failed transactions: 0 (0.000%)
latency average = 3.412 ms
latency stddev = 2.118 ms
rate limit schedule lag: avg 0.950 (max 21.077) ms
initial connection time = 41.202 ms
tps = 4993.771203 (without initial connection time)
"""


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pg_bench_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and typing look the module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("rate", [100, 2000, 5000, 9000])
def test_the_writer_has_connections_for_commits_of_several_ms(bench: ModuleType, rate: int) -> None:
    clients = bench.writer_clients(rate)
    assert 8 <= clients <= 64  # Postgres' default max_connections is 100
    if rate <= 64 * 150:
        # each synchronous commit may take ~6.5 ms and the rate is still reached
        assert clients / 0.0065 >= rate


def test_pgbench_report_figures(bench: ModuleType) -> None:
    assert bench._pgbench_figure(REPORT, "tps =") == 4993.77
    assert bench._pgbench_figure(REPORT, "latency average =") == 3.41
    assert bench._pgbench_figure(REPORT, "rate limit schedule lag: avg") == 0.95
    assert bench._pgbench_figure(REPORT, "no such line") is None


def test_disk_probe_times_appends_and_overwrites(bench: ModuleType, tmp_path: Path) -> None:
    probe = bench.disk_probe(tmp_path, seconds=0.2)
    assert set(probe) == {"append", "overwrite"}
    for figures in probe.values():
        assert figures["n"] > 0
        assert 0 <= figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert list(tmp_path.iterdir()) == []  # the probe files are removed
