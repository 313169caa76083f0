"""What every API view needs from the app: the settings and this process's store.

The store is opened on first use, not when the app is built: gunicorn imports the app and
then forks its workers, and each worker should open its own connection.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import current_app

from corral.config import Settings
from corral.store import Store

__all__ = ["StoreHandle", "settings", "store"]


class StoreHandle:
    """Opens the store once per process, on first call, and records it in ``extensions``."""

    def __init__(self, settings: Settings, extensions: dict[str, Any]) -> None:
        self.settings = settings
        self._extensions = extensions
        self._store: Store | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = Store.for_settings(self.settings)
                self._extensions["corral.store"] = self._store
            return self._store


def store() -> Store:
    """The store of the app handling the current request."""
    return current_app.extensions["corral.store_factory"]()


def settings() -> Settings:
    """The settings the current app was created with."""
    return current_app.extensions["corral.settings"]
