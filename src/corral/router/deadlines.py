"""Many deadlines kept with one loop timer: the router sets one or two per proxied request.

A loop timer is an allocation and, in uvloop, a libuv handle to start, stop and close; a
deadline here is an entry in a set. Deadlines are grouped in slots of ``TICK`` seconds and
one timer fires at the earliest slot that has any, so each fires up to ``TICK`` late.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Protocol

__all__ = ["TICK", "Deadlines", "Expiring"]

#: How finely deadlines are kept, in seconds: each fires within this much after its time.
TICK = 0.05
# A timer may fire a little before its time (libuv counts milliseconds): slots that close
# within this much of now are due, and a deadline goes in a slot closing at least this much
# after it, so none fires early.
_EARLY = 0.002


class Expiring(Protocol):
    """What a deadline is set for: told once its time has passed, unless removed first."""

    def expire(self) -> None: ...


class Deadlines:
    """Deadlines on the running loop, each set with :meth:`add` and cleared with :meth:`remove`."""

    def __init__(self) -> None:
        self._slots: dict[int, set[Expiring]] = {}
        self._heap: list[int] = []  # the slots in ``_slots``, earliest first
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot = 0

    def add(self, target: Expiring, when: float) -> int:
        """Call ``target.expire()`` soon after ``when`` (a ``loop.time()``); returns its slot."""
        slot = int((when + _EARLY) / TICK) + 1
        targets = self._slots.get(slot)
        if targets is None:
            # Slots stay until their tick even when emptied, so a slot is pushed only once.
            targets = self._slots[slot] = set()
            heapq.heappush(self._heap, slot)
            if self._timer is None or slot < self._timer_slot:
                self._arm(slot)
        targets.add(target)
        return slot

    def remove(self, target: Expiring, slot: int) -> None:
        """Clear the deadline :meth:`add` set for ``target`` in ``slot``, if it has not fired."""
        targets = self._slots.get(slot)
        if targets is not None:
            targets.discard(target)

    def close(self) -> None:
        """Drop every deadline without firing it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._slots.clear()
        self._heap.clear()

    def _arm(self, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_slot = slot
        self._timer = asyncio.get_running_loop().call_at(slot * TICK, self._tick)

    def _tick(self) -> None:
        self._timer = None
        due = asyncio.get_running_loop().time() + _EARLY
        heap = self._heap
        while heap and heap[0] * TICK <= due:
            for target in self._slots.pop(heapq.heappop(heap), ()):
                target.expire()
        if heap:
            self._arm(heap[0])
