"""Clocks: when the daily quota resets. Injectable, so tests and the fake server can shorten a day.

Gemini's requests-per-day quotas reset at midnight America/Los_Angeles (so the reset follows DST). A
:class:`FastClock` has days of ``day_seconds`` counted from ``epoch``; the fake server and the runner given the
same ``FastClock`` agree on when a day ends.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")


class Clock:
    """Wall-clock time with Pacific-midnight days."""

    def now(self) -> float:
        return time.time()

    def day(self, t: float | None = None) -> str:
        """The quota day ``t`` falls in, as a string id (``YYYY-MM-DD`` in Pacific time)."""
        t = self.now() if t is None else t
        return datetime.fromtimestamp(t, PACIFIC).strftime("%Y-%m-%d")

    def next_reset(self, t: float | None = None) -> float:
        """Epoch seconds of the next daily reset after ``t``."""
        t = self.now() if t is None else t
        local = datetime.fromtimestamp(t, PACIFIC)
        midnight = datetime(local.year, local.month, local.day, tzinfo=PACIFIC) + timedelta(days=1)
        return midnight.timestamp()

    def describe(self) -> str:
        return "midnight America/Los_Angeles"


class FastClock(Clock):
    """Days of ``day_seconds`` seconds starting at ``epoch`` (for tests, benchmarks and the demo)."""

    def __init__(self, day_seconds: float, epoch: float = 0.0):
        if day_seconds <= 0:
            raise ValueError("day_seconds must be positive")
        self.day_seconds = float(day_seconds)
        self.epoch = float(epoch)

    def day(self, t: float | None = None) -> str:
        t = self.now() if t is None else t
        return f"fastday-{int((t - self.epoch) // self.day_seconds)}"

    def next_reset(self, t: float | None = None) -> float:
        t = self.now() if t is None else t
        n = int((t - self.epoch) // self.day_seconds) + 1
        return self.epoch + n * self.day_seconds

    def describe(self) -> str:
        return f"every {self.day_seconds:g}s (fast clock)"


def make_clock(day_seconds: float | None = None, epoch: float | None = None) -> Clock:
    """A FastClock when ``day_seconds`` is given, else the real Pacific-midnight clock."""
    return FastClock(day_seconds, epoch or 0.0) if day_seconds else Clock()


class ManualClock(FastClock):
    """A FastClock whose time only moves when told (:meth:`advance`, :meth:`set`): quota windows and days in
    tests without sleeping. Thread-safe enough for the fake server: reads and writes of one float."""

    def __init__(self, day_seconds: float, epoch: float = 0.0, *, start: float | None = None):
        super().__init__(day_seconds, epoch)
        self._now = float(epoch if start is None else start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds``; returns the new time."""
        self._now += float(seconds)
        return self._now

    def set(self, t: float) -> None:
        self._now = float(t)
