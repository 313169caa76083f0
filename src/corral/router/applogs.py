"""Each app's ``router.log``: the router's request lines, stamped, written in batches.

Both routers write through it: the embedded one from its event loop, the nginx watcher
(:mod:`corral.router.nginx`) from the records nginx sends it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from corral.logfiles import MAX_LOG_BYTES, LogFile

__all__ = ["AppLogs", "Stamps"]


class Stamps:
    """Now as :func:`corral.logfiles.timestamp` says it, in a fifth of its time: the date
    and time of day are formatted once a second, the microseconds per line."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        second, micros = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        return f"{self._prefix}{micros:06d}+00:00"


class AppLogs:
    """Log lines to ``DIR/<app>/router.log``, stamped, flushed within 0.1 s.

    Files stay open (one per app) and lines are held until the flush, so a busy router
    makes few system calls; lines of requests that matched no app go to
    ``DIR/_unrouted/router.log``. A file is rotated to ``.1`` at a flush once it passes
    ``max_bytes``, like every other log of the app.
    """

    def __init__(self, root: Path, max_bytes: int = MAX_LOG_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._files: dict[str, LogFile] = {}
        self._flush_scheduled = False
        self._stamp = Stamps()

    def __call__(self, app: str, line: str) -> None:
        name = app or "_unrouted"
        log = self._files.get(name)
        if log is None:
            log = self._files[name] = LogFile(self.root / name / "router.log", self.max_bytes)
        log.write(f"{self._stamp()} router: {line}\n")  # logfiles.format_line's, unrolled
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(0.1, self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        for name, log in list(self._files.items()):
            if (self.root / name).is_dir():
                log.flush()
            else:  # the app was destroyed, and its lines with it
                log.close(flush=False)
                del self._files[name]
