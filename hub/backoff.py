"""Exponential backoff with full jitter, for retrying transient connector failures."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays ``initial * multiplier**n`` capped at ``maximum``, each drawn uniformly from
    ``[delay/2, delay]`` so that many connectors failing together do not retry in lockstep.
    """

    initial: float = 0.5
    maximum: float = 60.0
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.multiplier**self.attempts)
        self.attempts += 1
        return self.rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempts = 0
