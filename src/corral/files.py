"""Replacing a file atomically, so a reader sees the old content or the new, never half;
and holding a lock file, so processes take turns.

The platform's small state files (route table, a dyno's exit status, an environment's
marker, credentials, hooks) are all written this way; deploys, build slots and
environments are guarded by :func:`locked`.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "file_stamp", "locked"]


@contextmanager
def locked(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path``; yields False when ``blocking`` is off and it is taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def atomic_write(path: Path, data: str | bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8), its mode set to ``mode``.

    The data goes to a uniquely named file in the same directory (so the rename stays on
    one filesystem), which is then renamed over ``path``; on failure it is removed. There
    is no fsync: the rename protects readers and a crash of the writer, not a power loss,
    and every file written this way is either rebuilt from the store or rewritten by the
    next run, so paying a disk flush on each write (the route table changes with every
    dyno) buys nothing.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            # fchmod, not a mode for the open: that one would be filtered by the umask.
            os.fchmod(handle.fileno(), mode)
            handle.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes whenever ``path`` is written or replaced (mtime, size, inode: the inode
    changes on every :func:`atomic_write`, even within one mtime tick); None if missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
