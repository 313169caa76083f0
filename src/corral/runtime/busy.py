"""The supervisor's writes to the store, made to outlast a busy store.

Another process may hold the store's write lock for seconds (a long transaction, a backup,
a stuck API worker). The supervisor must keep supervising meanwhile: its reads go on (WAL),
and its writes go through :class:`StoreWrites`, which keeps the last write of each unit in
order until the store takes it, backs off between attempts (so the loop is not stalled by
one busy timeout after another), and says so once per episode in the platform log
(``corral[supervisor]: ...``) and once more when the store answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Any, TypeVar

from corral.store import StoreBusy

__all__ = ["Backoff", "StoreWrites"]

T = TypeVar("T")


class Backoff:
    """Delays between attempts at a busy store: doubling from ``first`` up to ``longest``."""

    def __init__(self, first: float = 0.25, longest: float = 4.0) -> None:
        self.first = first
        self.longest = longest

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1, 2, ...)."""
        return min(self.longest, self.first * 2 ** max(0, failures - 1))


class StoreWrites:
    """Writes that wait for a busy store instead of failing the loop that makes them."""

    def __init__(
        self,
        log: Callable[[str], None],
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._backoff = backoff or Backoff()
        self._clock = clock
        #: key -> the newest write for it (one unit's row: its last state wins), in order.
        self._pending: dict[Hashable, Callable[[], object]] = {}
        self._failures = 0
        self._since = 0.0
        self._next_try = 0.0

    @property
    def busy(self) -> bool:
        """Whether the store refused the last write tried (an episode is in progress)."""
        return self._failures > 0

    @property
    def pending(self) -> int:
        """How many writes are waiting for the store."""
        return len(self._pending)

    def defer(self, key: Hashable, write: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Make ``write(*args, **kwargs)`` now, or once the store allows; it replaces, in its
        place in the order, a write for the same ``key`` still waiting."""
        self._pending[key] = partial(write, *args, **kwargs)
        self.flush()

    def flush(self) -> bool:
        """Make the waiting writes, in order, unless backing off; whether none is left."""
        while self._pending and self._ready():
            key, write = next(iter(self._pending.items()))
            if not self._attempt(write):
                break
            if self._pending.get(key) is write:
                del self._pending[key]
        return not self._pending

    def attempt(self, call: Callable[[], T]) -> T | None:
        """``call()``, or None when the store is busy (or while backing off from it): for
        writes a later tick can simply make again (taking the queued requests)."""
        result: list[T] = []
        if self.flush() and self._attempt(lambda: result.append(call())):
            return result[0]
        return None

    async def until_done(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` once the waiting writes are in and the store takes it, however long."""
        result: list[T] = []
        while not (
            self.flush() and self._ready() and self._attempt(lambda: result.append(call(*args)))
        ):
            await asyncio.sleep(max(0.05, self._next_try - self._clock()))
        return result[0]

    def _ready(self) -> bool:
        return self._clock() >= self._next_try

    async def guarded(self, work: Awaitable[object], wait: float) -> float:
        """Await ``work``; returns ``wait``, or a longer backoff if the store refused it."""
        try:
            await work
        except StoreBusy:
            return max(wait, self.refused())
        return wait

    def refused(self) -> float:
        """Note that the store refused something (logged once per episode); returns the
        seconds to wait before the next attempt."""
        now = self._clock()
        if not self._failures:
            self._since = now
            self._log("The store is busy (another process holds its write lock); retrying")
        self._failures += 1
        delay = self._backoff.delay(self._failures)
        self._next_try = now + delay
        return delay

    def _attempt(self, write: Callable[[], object]) -> bool:
        try:
            write()
        except StoreBusy:
            self.refused()
            return False
        if self._failures:
            self._log(f"The store answers again after {self._clock() - self._since:.1f}s")
            self._failures = 0
        return True
