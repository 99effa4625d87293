"""Column values as JSON-ready values for the event's ``after`` image.

The mapping is lossless where JSON allows it and documented where it does not:

=====================  ==========================================================
Python value           in the event
=====================  ==========================================================
None, bool, int, str   as is
float                  as is (NaN and infinities become null, as JSON has none)
Decimal                string, all digits kept ("12.30")
datetime               ISO-8601; with its offset when the value is zone-aware
date, time             ISO-8601
timedelta              integer microseconds (Debezium's MicroDuration)
bytes, memoryview      base64 string
UUID                   string
dict, list, tuple      the same shape, with every member mapped
anything else          ``str(value)``
=====================  ==========================================================
"""

from __future__ import annotations

import base64
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

__all__ = ["json_ready", "json_row"]


def json_ready(value: Any) -> Any:
    """``value`` mapped to something orjson encodes the same way on every database."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return str(value)


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {name: json_ready(value) for name, value in row.items()}
