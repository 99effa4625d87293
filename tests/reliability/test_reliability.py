"""The CI subset of the reliability suite: the quick size of every fault scenario and of the
load runs, on private PostgreSQL and OpenSearch servers (the scenarios stop, restart and cut
them). Each ends with the index compared to the table row by row; its result goes to a
report in a temporary directory. The full sizes run with ``scripts/torture`` (README:
Reliability), which writes bench/RELIABILITY.md."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.services import ServicesCommandError
from tests.reliability import report
from tests.reliability.report import Result
from tests.reliability.rig import Servers
from tests.reliability.scenarios import SCENARIOS, Size, run_scenario
from tests.reliability.soak import run_load

# A scenario's catch-up waits while the sink makes progress (up to 10 minutes on a loaded
# machine), longer than the suite's default per-test timeout.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

QUICK = Size(quick=True)


@pytest.fixture(scope="module", autouse=True)
def report_elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CI subset reports into a temporary directory, so that running the test suite
    leaves the checkout as it was; ``scripts/torture`` (or CHANGEHUB_RELIABILITY_DIR)
    writes bench/RELIABILITY.md."""
    if os.environ.get("CHANGEHUB_RELIABILITY_DIR"):
        yield
        return
    out = tmp_path_factory.mktemp("reliability-report")
    (out / "results").mkdir()
    saved = report.OUT_DIR
    report.OUT_DIR = out
    try:
        yield
    finally:
        report.OUT_DIR = saved


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    try:
        rig = Servers.start()
    except ServicesCommandError as exc:
        pytest.fail(f"could not start the reliability rig's servers: {exc}", pytrace=False)
    try:
        yield rig
    finally:
        rig.stop()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


def check(result: Result) -> None:
    report.record(result)
    assert result.ok, (
        f"{result.scenario}: lost {result.lost}, extra {result.extra}, divergent "
        f"{result.divergent} of {result.records} rows; {result.notes}; first differences: "
        f"{result.samples}")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_fault_scenario_leaves_the_index_equal_to_the_table(
    servers: Servers, work: Path, scenario: str
) -> None:
    check(run_scenario(scenario, servers, work, QUICK))


@pytest.mark.parametrize("load", ["soak", "burst"])
def test_load_keeps_memory_and_lag_bounded(servers: Servers, work: Path, load: str) -> None:
    check(run_load(load, servers, work, QUICK))
