"""Retry timing: exponential backoff with jitter, for transient errors (on the slot) and bare 429s (on the bucket).

Jitter keeps several slots (and several processes) that failed together from retrying in lockstep. The delay
grows with the *streak* of consecutive failures and resets on the next success.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """``base_s * factor ** (streak - 1)``, capped at ``max_s``, with the top ``jitter`` fraction randomised.

    "Equal jitter": the delay is at least ``(1 - jitter)`` of the exponential value, so waits still grow, and the
    rest is uniform, so concurrent retries spread out.
    """

    base_s: float = 2.0
    max_s: float = 120.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, streak: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``streak``-th failure in a row (``streak >= 1``)."""
        if streak < 1:
            return 0.0
        raw = min(self.max_s, self.base_s * self.factor ** min(streak - 1, 60))
        u = (rng or random).random()
        return raw * (1.0 - self.jitter) + raw * self.jitter * u


def jittered(seconds: float, *, spread: float = 0.2, rng: random.Random | None = None) -> float:
    """``seconds`` plus up to ``spread`` of itself at random (a server-given delay, made not to stampede)."""
    return seconds * (1.0 + spread * (rng or random).random())
