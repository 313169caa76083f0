"""One platform per home: the lock a running ``corral server`` holds on its home.

Two servers on one home would adopt each other's services and stop them under each other.
So a server takes an exclusive ``flock`` on ``run/server.lock`` before it touches anything
else and holds it for its whole life. The kernel releases it when the process ends, even
by ``kill -9``: there is never a stale lock to clear, and the services a killed server
left running do not hold it (the descriptor is not inherited), so the next start adopts
them. The file says who holds the lock (pid and URL), for the message a refused start
prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType

from corral.errors import UserError

__all__ = ["HomeLock", "lock_home"]

#: Seconds a refused start waits for the holder to have written who it is: the holder
#: writes right after taking the lock, so only a start at the same instant sees it empty.
_HOLDER_WAIT = 1.0


class HomeLock:
    """The held lock on one home; released by :meth:`release` (or when the process ends)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    def release(self) -> None:
        """Let another server start on this home."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()


def lock_home(home: Path, run_dir: Path, url: str) -> HomeLock:
    """Take the home's lock for this process, or say which server already holds it."""
    path = run_dir / "server.lock"
    try:
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UserError(
            f"Cannot write to corral's home {home} ({exc.strerror}); "
            "pass --home a directory you can write to."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise UserError(
            f"corral server is already running for this home ({holder}); "
            "stop it first or pass another --home."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "url": url}).encode() + b"\n", 0)
    return HomeLock(fd, path)


def _holder(fd: int) -> str:
    deadline = time.monotonic() + _HOLDER_WAIT
    while True:
        try:
            entry = json.loads(os.pread(fd, 4096, 0))
            return f"pid {int(entry['pid'])}, {entry['url']}"
        except (ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return "its pid is not recorded yet"
            time.sleep(0.05)
