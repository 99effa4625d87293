"""What a connector's ``doctor`` check reports: one :class:`Finding` per check.

Connector modules (``connectors/source/postgres/doctor.py`` …) return lists of these; the
``changehub doctor`` command (:mod:`hub.doctor`) tags them with the system they concern.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Finding", "Level"]

Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class Finding:
    """One check: ``ok``, or a problem with the exact fix."""

    level: Level
    check: str
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        text = f"[{self.level}] {self.check}: {self.message}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text
