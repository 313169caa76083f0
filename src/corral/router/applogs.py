"""Each app's ``router.log``: the router's request lines, stamped, written in batches.

Both routers write through it: the embedded one from its event loop, the nginx watcher
(:mod:`corral.router.nginx`) from the records nginx sends it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from corral.logfiles import MAX_LOG_BYTES, LogFile, format_line, timestamp

__all__ = ["AppLogs"]


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

    def __call__(self, app: str, line: str) -> None:
        name = app or "_unrouted"
        log = self._files.get(name)
        if log is None:
            log = self._files[name] = LogFile(self.root / name / "router.log", self.max_bytes)
        log.write(format_line(timestamp(), "router", "", line) + "\n")
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
