"""What a ``doctor`` check reports: one :class:`Finding` per check.

Connector modules (``connectors/source/postgres/doctor.py`` …) return lists of these; the
``changehub doctor`` command (:mod:`hub.doctor`) makes its own checks (the log, polled
databases, sinks) with the same class and tags every finding with the system it concerns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Finding", "Level"]

Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class Finding:
    """One check: ``ok``, or a problem with the exact fix; ``system`` names what was checked
    (``source shop (postgres)``) once :mod:`hub.doctor` tagged it."""

    level: Level
    check: str
    message: str
    fix: str | None = None
    system: str = ""

    def __str__(self) -> str:
        where = f"{self.system}: " if self.system else ""
        text = f"[{self.level}] {where}{self.check}: {self.message}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text
