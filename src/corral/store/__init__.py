"""corral's store: one SQLite file, the single source of truth of the platform.

The API writes desired state (apps, releases, config vars, formation, domains, tokens);
the supervisor reads it and records the dynos it observes. Every process opens its own
:class:`Store`; inside a process, threads share a pool of connections (a read
never waits for a write). SQLite runs
in WAL mode with a busy timeout, and every read-modify-write (like allocating the next
release version) runs in one short ``BEGIN IMMEDIATE`` transaction, so several gunicorn
workers and the manager can write at once. How config vars and releases relate is told
in :mod:`corral.store.releases`.
"""

from __future__ import annotations

from typing import Self

from corral.config import Settings
from corral.store._db import BUSY_TIMEOUT
from corral.store.addons import AddonsMixin
from corral.store.apps import AppsMixin
from corral.store.builds import BuildsMixin
from corral.store.certs import Certificate, CertsMixin, Issued
from corral.store.dynos import DynosMixin
from corral.store.errors import Conflict, Invalid, NotFound, StoreBusy
from corral.store.formation import FormationMixin
from corral.store.models import (
    Addon,
    App,
    Attachment,
    Build,
    BuildStatus,
    Domain,
    Dyno,
    DynoState,
    FormationEntry,
    OneOff,
    Release,
    ReleaseStatus,
    Token,
)
from corral.store.oneoffs import OneOffsMixin
from corral.store.overview import AppSummary, OverviewMixin
from corral.store.releases import ReleasesMixin
from corral.store.renames import RenamesMixin
from corral.store.slugs import SlugsMixin
from corral.store.tokens import TokensMixin

__all__ = [
    "DB_FILENAME",
    "WAKE_SOCKET",
    "Addon",
    "App",
    "AppSummary",
    "Attachment",
    "Build",
    "BuildStatus",
    "Certificate",
    "Conflict",
    "Domain",
    "Dyno",
    "DynoState",
    "FormationEntry",
    "Invalid",
    "Issued",
    "NotFound",
    "OneOff",
    "Release",
    "ReleaseStatus",
    "Store",
    "StoreBusy",
    "Token",
]

#: The store's file name inside ``CORRAL_HOME``.
DB_FILENAME = "corral.db"
#: The supervisor's datagram socket in the run directory, told of each commit.
WAKE_SOCKET = "store.sock"


class Store(
    AppsMixin,
    ReleasesMixin,
    FormationMixin,
    BuildsMixin,
    DynosMixin,
    OneOffsMixin,
    TokensMixin,
    RenamesMixin,
    SlugsMixin,
    OverviewMixin,
    CertsMixin,
    AddonsMixin,
):
    """The platform's state; open with :meth:`Store.open` or :meth:`Store.for_settings`."""

    @classmethod
    def for_settings(
        cls, settings: Settings, *, busy_timeout: float | None = None, wake: bool = True
    ) -> Self:
        """Open the store of the corral home in ``settings`` (``busy_timeout``: see open).
        With ``wake``, each write tells the supervisor at once (:data:`WAKE_SOCKET`)."""
        path = settings.home / DB_FILENAME
        store = cls.open(path, busy_timeout=BUSY_TIMEOUT if busy_timeout is None else busy_timeout)
        if wake:
            store.wake_on_commit(settings.run_dir / WAKE_SOCKET)
        return store
