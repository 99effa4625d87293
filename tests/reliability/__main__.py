"""``scripts/torture``: run the reliability scenarios against real servers and record the
results in bench/RELIABILITY.md. Exit 0 only if every scenario ended with the index equal to
the table (and the soak/burst within their bounds)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.reliability import report
from tests.reliability.rig import Servers
from tests.reliability.scenarios import SCENARIOS, Size, run_scenario
from tests.reliability.soak import LOAD, run_load


def main(argv: list[str] | None = None) -> int:
    names = [*SCENARIOS, *LOAD]
    parser = argparse.ArgumentParser(
        prog="scripts/torture",
        description="Fault injection and load against real Postgres + OpenSearch; every "
                    "scenario ends with the index compared to the table row by row.")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"which to run (default: all): {', '.join(names)}")
    parser.add_argument("--quick", action="store_true",
                        help="the small sizes the CI subset uses (minutes, not hours)")
    parser.add_argument("--soak-seconds", type=float, default=None,
                        help="soak duration (default: 3600; --quick: 30)")
    parser.add_argument("--rate", type=float, default=None,
                        help="soak changes/s (default: 5000; --quick: 500)")
    parser.add_argument("--burst-rows", type=int, default=None,
                        help="rows in the burst's one transaction (default 1000000; --quick "
                             "100000)")
    parser.add_argument("--repeat", type=int, default=1, help="run the list this many times")
    args = parser.parse_args(argv)
    unknown = [n for n in args.scenarios if n not in names]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(names)}")
    chosen = args.scenarios or names
    size = Size(quick=args.quick)
    print(f"starting PostgreSQL and OpenSearch for the {size.name} run of "
          f"{', '.join(chosen)} ...", flush=True)
    # SIGTERM unwinds like Ctrl-C, so the servers this run started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not args.quick:
        # the full sizes index millions of documents: with the 512 MB heap the test suite's
        # nodes get, OpenSearch's parent circuit breaker answers 429 after about half an
        # hour of the soak and the sink (rightly backing off) falls ever further behind
        os.environ.setdefault("CHANGEHUB_OPENSEARCH_HEAP", "2g")
    servers = Servers.start()
    failed = 0
    work = Path(tempfile.mkdtemp(prefix="changehub-torture-"))
    try:
        for _ in range(args.repeat):
            for name in chosen:
                t0 = time.monotonic()
                print(f"{name}: running", flush=True)
                if name in LOAD:
                    result = run_load(name, servers, work, size, soak_s=args.soak_seconds,
                                      rate=args.rate, burst_rows=args.burst_rows)
                else:
                    result = run_scenario(name, servers, work, size)
                report.record(result)
                failed += 0 if result.ok else 1
                print(f"{name}: {'ok' if result.ok else 'FAILED'} in "
                      f"{time.monotonic() - t0:.0f} s: {result.faults} faults, "
                      f"{result.records} rows, lost {result.lost}, extra {result.extra}, "
                      f"divergent {result.divergent}. {result.notes}", flush=True)
    finally:
        servers.stop()
        with contextlib.suppress(OSError):
            work.rmdir()  # left only if a failed scenario kept its directory
    print(f"report: {report.OUT_DIR / 'RELIABILITY.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
