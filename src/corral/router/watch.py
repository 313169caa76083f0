"""Hear at once that a file was replaced, with Linux's inotify, so nobody has to poll it.

The router follows its route table this way: no request pays a ``stat`` to learn the
table is unchanged, and a new one is seen by the first request after it is written. Where
inotify is missing (not Linux, or out of watches) :func:`watch_file` says so and the
caller checks the file itself.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
from collections.abc import Callable
from pathlib import Path

__all__ = ["FileWatch", "watch_file"]

_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
#: Whatever can change what the name points at, in the directory that holds it.
_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO
_MASK |= _IN_CREATE | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF
#: The watch itself is gone (the directory went away): from then on, nobody is told.
_LOST = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


def _libc() -> ctypes.CDLL | None:
    # The symbols the interpreter itself was linked with (libc's among them): no search
    # for the library (``ctypes.util.find_library`` runs ldconfig).
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


class FileWatch:
    """Calls ``on_change`` when the file at a path may have changed, ``on_lost`` if it can
    no longer tell (then the caller goes back to checking the file itself)."""

    def __init__(self, fd: int, name: bytes, on_change: Callable[[], None],
                 on_lost: Callable[[], None]) -> None:  # fmt: skip
        self.fd = fd
        self._name = name
        self._on_change = on_change
        self._on_lost = on_lost
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read the watch's events on ``loop``."""
        self._loop = loop
        loop.add_reader(self.fd, self._read)

    def close(self) -> None:
        """Stop watching."""
        if self.fd < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = -1

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        changed = lost = not data
        at = 0
        while at + _EVENT.size <= len(data):
            _, mask, _, length = _EVENT.unpack_from(data, at)
            name = data[at + _EVENT.size : at + _EVENT.size + length].rstrip(b"\0")
            at += _EVENT.size + length
            if mask & _LOST:
                lost = True
            if mask & _IN_Q_OVERFLOW or name == self._name:
                changed = True
        if changed or lost:
            self._on_change()
        if lost:
            self.close()
            self._on_lost()


def watch_file(path: Path, on_change: Callable[[], None],
               on_lost: Callable[[], None]) -> FileWatch | None:  # fmt: skip
    """A watch on ``path`` (through its directory, so a file replaced by a rename is
    followed), not yet started; None where inotify is not available."""
    libc = _libc()
    if libc is None or not hasattr(libc, "inotify_init1"):
        return None
    fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        return None
    directory = os.fsencode(path.parent if str(path.parent) else Path("."))
    if libc.inotify_add_watch(fd, directory, _MASK) < 0:
        os.close(fd)
        return None
    return FileWatch(fd, os.fsencode(path.name), on_change, on_lost)
