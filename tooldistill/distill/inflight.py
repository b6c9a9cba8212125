"""The in-flight requests of a dispatch loop: one mechanism for the labeling runner and the synthesizer.

Both loops start requests as asyncio tasks, sleep until one finishes (or a stop or a wake-up is asked for),
reap finished tasks so a bug in one surfaces at once, and on shutdown let in-flight requests finish within a
grace period before abandoning them.
"""

from __future__ import annotations

import asyncio
import time


class InFlight:
    """Mixin: ``tasks`` (the in-flight requests) and ``_wake`` (set by a finished request or a stop signal).

    A subclass sets ``self.tasks = set()`` and, inside its event loop, ``self._wake = asyncio.Event()``;
    ``self._abandon = True`` (a second Ctrl-C) ends a drain at once.
    """

    tasks: set[asyncio.Task]
    _wake: asyncio.Event | None
    _abandon: bool = False

    async def _pause(self, timeout: float | None) -> None:
        """Sleep until a request finishes, a stop is asked for, or ``timeout`` seconds pass."""
        if self._wake.is_set():
            self._wake.clear()
            return
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({*self.tasks, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        self._wake.clear()

    def _reap(self) -> None:
        """Forget finished requests; re-raise the error of one that failed (a bug, never a teacher outcome)."""
        for task in [t for t in self.tasks if t.done()]:
            self.tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()

    async def _drain(self, *, grace: float | None) -> None:
        """Let in-flight requests finish (within ``grace`` seconds, if given), then abandon the rest."""
        deadline = None if grace is None else time.monotonic() + grace
        while self.tasks and not self._abandon:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            await self._pause(left)
            self._reap()
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self._reap()
        self.tasks.clear()
