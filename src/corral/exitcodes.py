"""How a process's end is reported to a user: as a shell reports it.

Python gives a child killed by signal N the return code ``-N``; shells, Heroku and
corral's own exit codes say ``128 + N``. Every place that hands such a code on uses these.
"""

from __future__ import annotations

__all__ = ["shell_status", "signal_status"]


def signal_status(signum: int) -> int:
    """The status a shell reports for a process stopped by signal ``signum``: ``128 + signum``."""
    return 128 + signum


def shell_status(returncode: int) -> int:
    """A child's return code (negative: killed by that signal) as a shell reports it."""
    return signal_status(-returncode) if returncode < 0 else returncode
