"""Sleeping until files change: what a deploy waits on while the supervisor rolls it out.

The verdict is a commit to the store (SQLite in WAL mode appends it to ``corral.db-wal``)
and the dynos' progress is appended to the app's log files, so a wait that wakes when those
files are written reacts within a few milliseconds, without polling. Where inotify is not
there (not Linux, no instance left) the wait is a plain sleep, and the caller's timeout is
its poll interval.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from types import TracebackType

try:
    import inotify_simple  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - only off Linux
    inotify_simple = None

__all__ = ["Changes"]

#: What counts as a change: a write, or a file appearing (a new WAL, a rotated log).
_MASK = (
    (
        inotify_simple.flags.MODIFY
        | inotify_simple.flags.CREATE
        | inotify_simple.flags.MOVED_TO
        | inotify_simple.flags.CLOSE_WRITE
    )
    if inotify_simple is not None
    else 0
)


class Changes:
    """Wakes :meth:`wait` when a file in one of ``dirs`` is written (those that exist now).

    ``names``, if given, keeps only changes to files whose name starts with one of them.
    """

    def __init__(self, *dirs: Path, names: tuple[str, ...] = ()) -> None:
        self._names = names
        self._inotify = None
        self._watched = 0
        if inotify_simple is None:
            return
        try:
            self._inotify = inotify_simple.INotify()
        except OSError:  # no inotify instance left for this user: sleep instead
            return
        for path in dirs:
            with contextlib.suppress(OSError):  # a directory not made yet
                self._inotify.add_watch(str(path), _MASK)
                self._watched += 1

    @property
    def watching(self) -> bool:
        """Whether :meth:`wait` wakes on changes (else it only sleeps)."""
        return self._inotify is not None and self._watched > 0

    def wait(self, timeout: float) -> bool:
        """Sleep until a change or ``timeout`` seconds; whether a change woke it."""
        if not self.watching:
            time.sleep(max(0.0, timeout))
            return False
        assert self._inotify is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            events = self._inotify.read(timeout=max(1, round(left * 1000)))
            if any(not self._names or e.name.startswith(self._names) for e in events):
                return True
        return False

    def close(self) -> None:
        """Stop watching."""
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def __enter__(self) -> Changes:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
