"""Shorter garbage-collector pauses in a long-running hub: start-up's objects are frozen.

CPython's full (generation 2) collection walks every object the collector tracks while it
holds the interpreter lock, so every thread of the hub stops for as long as it takes. Most
of those objects are made at start-up (modules, config models, connector classes) and live
as long as the process: walking them again on every full collection stalled the pipeline
for 30-70 ms of CPU at a time on this project's 2-core machine (``gc.callbacks`` in the
MySQL latency benchmark, bench/README.md "MySQL source"). :func:`gc.freeze` moves them to
a permanent generation that collections skip; what the pipeline makes later is collected
as before.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_objects"]


def freeze_startup_objects() -> int:
    """Collect start-up's garbage, then freeze what is left; returns how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
