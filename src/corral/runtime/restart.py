"""When to restart a dyno that exited: at once the first time, then with growing delays.

Pure logic: the supervisor asks :meth:`RestartPolicy.delay` how long to wait before the
next try, given how many times in a row the dyno has crashed and how long it last stayed up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff with a cap, forgiven once a dyno stays up for ``reset_after``."""

    #: Delay before the second try; each further crash multiplies it by ``factor``.
    first_delay: float = 1.0
    factor: float = 2.0
    #: No wait is ever longer than this (Heroku waits up to 20 minutes; we are gentler).
    cap: float = 300.0
    #: A dyno that stayed up this long is healthy again: its crash count starts over.
    reset_after: float = 60.0

    def crashes_after(self, previous_crashes: int, uptime: float) -> int:
        """The crash count once a dyno with ``previous_crashes`` exits after ``uptime`` seconds."""
        return 1 if uptime >= self.reset_after else previous_crashes + 1

    def delay(self, crashes: int) -> float:
        """Seconds to wait before restarting a dyno that has crashed ``crashes`` times in a row."""
        if crashes <= 1:
            return 0.0
        return min(self.cap, self.first_delay * self.factor ** (crashes - 2))
