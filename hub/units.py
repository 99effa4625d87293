"""Durations ("500ms", "5s", "7d") and sizes ("64MB", "10GiB") in config files.

Both are annotated ints for pydantic models: :data:`DurationMs` holds milliseconds,
:data:`ByteSize` holds bytes. A bare number is taken as-is (ms / bytes).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["ByteSize", "DurationMs", "parse_bytes", "parse_duration_ms"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_POW = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_duration_ms(value: Any) -> Any:
    """``"5s"`` -> 5000. Leaves non-strings to pydantic's int validation."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError(
                f"{value!r} is not a duration: use a number and a unit, e.g. 500ms, 5s, 10m, 2h, 7d"
            )
        return int(float(m.group(1)) * _DURATION_MS[m.group(2) or "ms"])
    return value


def parse_bytes(value: Any) -> Any:
    """``"64MB"`` -> 64 * 1024**2 (sizes are binary: KB = KiB). Non-strings pass through."""
    if isinstance(value, str):
        m = _SIZE.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a size: use e.g. 512KB, 64MB, 10GB")
        unit = (m.group(2) or "").lower()
        return int(float(m.group(1)) * 1024 ** _SIZE_POW[unit[:1] if unit != "b" else "b"])
    return value


DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]
ByteSize = Annotated[int, BeforeValidator(parse_bytes)]
