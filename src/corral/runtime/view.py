"""What the supervisor's reconcile pass reads from the store, read again only after a commit.

The supervisor looks at every app several times a second. With a hundred apps, asking the
store each time for each app's releases and formation was most of an idle platform's CPU,
though nothing had changed. A :class:`StoreView` asks SQLite first whether anything was
committed since it last read (``PRAGMA data_version``, a few microseconds) and keeps what
it read until then; each app's rows are read on first use after a change. The same check
tells the supervisor's loop to look again at once when the API records a release, instead
of at its next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from corral.store import NotFound, Store
from corral.store.models import App, Domain, FormationEntry, Release

__all__ = ["StoreView"]


class StoreView:
    """The store's apps, releases, formation and domains as of its last commit."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._version: int | None = None
        self.apps: dict[str, App] = {}
        self._current: dict[str, Release | None] = {}
        self._pending: dict[str, list[Release]] = {}
        self._formation: dict[str, list[FormationEntry]] = {}
        self._domains: list[Domain] | None = None
        self._poked: asyncio.Event | None = None

    def changed(self) -> bool:
        """Whether anything was committed since the last :meth:`refresh`."""
        return self.store.data_version() != self._version

    @contextlib.contextmanager
    def listening(self, path: Path) -> Iterator[None]:
        """Be told of commits at ``path`` (a root-only datagram socket) meanwhile: every
        store the platform's other processes open with ``wake`` sends a byte there after
        each write."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a platform killed with -9
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            mask = os.umask(0o177)  # never writable by others, not even for an instant
            try:
                sock.bind(str(path))
            finally:
                os.umask(mask)
            os.chmod(path, 0o600)  # the platform's processes run as root; apps' users may not
            poked = self._poked = asyncio.Event()
            loop.add_reader(sock.fileno(), self._drain, sock, poked)
            try:
                yield
            finally:
                loop.remove_reader(sock.fileno())
                self._poked = None

    @staticmethod
    def _drain(sock: socket.socket, poked: asyncio.Event) -> None:
        with contextlib.suppress(BlockingIOError):
            while sock.recv(64):  # many commits, one look
                pass
        poked.set()

    async def pause(self, seconds: float, stop: asyncio.Event) -> None:
        """Wait ``seconds``, less if ``stop`` is set or a commit is announced meanwhile."""
        waits = [asyncio.ensure_future(stop.wait())]
        if self._poked is not None:
            waits.append(asyncio.ensure_future(self._poked.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self._poked is not None:
            self._poked.clear()

    def refresh(self) -> bool:
        """Read the apps again if the store changed; whether it had."""
        version = self.store.data_version()  # before the reads: a commit after them shows
        if version == self._version:
            return False
        self.apps = {app.name: app for app in self.store.list_apps()}
        self._current.clear()
        self._pending.clear()
        self._formation.clear()
        self._domains = None
        self._version = version
        return True

    def forget(self) -> None:
        """Read everything again at the next :meth:`refresh`, changed or not."""
        self._version = None

    def drop(self, app: str) -> None:
        """Read ``app``'s rows again on next use (a commit this view has not seen is known)."""
        for cached in (self._current, self._pending, self._formation):
            cached.pop(app, None)

    # An app destroyed since :meth:`refresh` listed it has none of these: the commit that
    # destroyed it makes the next refresh drop it from :attr:`apps`.

    def current_release(self, app: str) -> Release | None:
        if app not in self._current:
            with contextlib.suppress(NotFound):
                self._current[app] = self.store.current_release(app)
        return self._current.get(app)

    def pending_releases(self, app: str) -> list[Release]:
        """Pending releases of ``app``, newest first."""
        if app not in self._pending:
            with contextlib.suppress(NotFound):
                self._pending[app] = self.store.pending_releases(app)
        return self._pending.get(app, [])

    def formation(self, app: str) -> list[FormationEntry]:
        if app not in self._formation:
            with contextlib.suppress(NotFound):
                self._formation[app] = self.store.formation(app)
        return self._formation.get(app, [])

    def domains(self) -> list[Domain]:
        if self._domains is None:
            self._domains = self.store.domains()
        return self._domains
