"""Run by test_kill_9: the sql sink over the warehouse workload in a process of its own.

``python -m tests.integration.warehouse.crash_child URL MODE EVENTS die|finish``: ``die``
flushes the first half, then SIGKILLs itself inside the second flush, after the rows and
offsets were sent and before the commit; ``finish`` starts again (as the hub would, with
every record re-delivered) and flushes everything.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from connectors.sink.sql import SqlSink, SqlSinkConfig
from connectors.sink.sql import sink as sink_module
from connectors.testing import make_context
from tests.integration.warehouse.workload import TP, workload

MODES: dict[str, dict[str, Any]] = {
    "upsert": {},
    "history": {"mode": "history"},
    "scd2": {"mode": "history", "history": {"scd2": True}},
}


def main(url: str, mode: str, events: int, action: str) -> None:
    records, _ = workload(events=events)
    config = SqlSinkConfig(name="wh", topics=["shop.*"], url=url, table="{table}",
                           **MODES[mode])
    sink = SqlSink(config, make_context("wh", Path(os.environ["CRASH_DATA_DIR"])))
    resume = sink.start({TP: 0})[TP]
    if action == "finish":
        sink.write(records)
        sink.flush()
        sink.stop()
        print(resume)
        return
    half = len(records) // 2
    sink.write(records[:half])
    sink.flush()
    real = sink_module.store_offsets  # type: ignore[attr-defined]

    def store_then_kill(*args: Any) -> None:
        real(*args)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(sink_module, "store_offsets", store_then_kill)  # noqa: B010 - patching for the test
    sink.write(records[half:])
    sink.flush()
    raise AssertionError("not killed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
