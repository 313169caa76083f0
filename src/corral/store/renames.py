"""Renaming an app: every row that names it, in one transaction, and the supervisor's hand-off.

The API renames the rows at once (so the next request, push or route sees only the new
name) and records the rename; the supervisor takes the record and carries the dynos it
runs under the old name over to the new one without stopping them.
"""

from __future__ import annotations

import time
from pathlib import Path

from corral.store._db import Database, require_app
from corral.store.apps import app_from_row
from corral.store.errors import Conflict
from corral.store.models import App
from corral.store.names import validate_app_name

#: Every table with an ``app`` column, besides ``apps`` itself.
_APP_TABLES = (
    "config_vars",
    "releases",
    "builds",
    "formation",
    "domains",
    "dynos",
    "dyno_requests",
    "one_offs",
    "certificates",
    "addons",
    "addon_attachments",
)


def _moved(path: str, old_root: Path, new_root: Path) -> str:
    candidate = Path(path)
    if candidate.is_relative_to(old_root):
        return str(new_root / candidate.relative_to(old_root))
    return path


class RenamesMixin(Database):
    """Data access for ``apps:rename``."""

    def rename_app(self, old: str, new: str, old_root: Path, new_root: Path) -> App:
        """Rename ``old`` to ``new`` everywhere; slug paths under ``old_root`` move to
        ``new_root``. Refused while a release of the app is pending."""
        new = validate_app_name(new)
        with self._write() as conn:
            require_app(conn, old)
            if conn.execute("SELECT 1 FROM apps WHERE name = ?", (new,)).fetchone():
                raise Conflict(f"The app name {new!r} is already taken; pick another.")
            pending = conn.execute(
                "SELECT version FROM releases WHERE app = ? AND status = 'pending'", (old,)
            ).fetchone()
            if pending is not None:
                raise Conflict(
                    f"{old} is being deployed (v{pending['version']} is in progress); "
                    "rename it when the deploy has finished."
                )
            # the children point at the old name until the end of the transaction
            conn.execute("PRAGMA defer_foreign_keys = ON")
            conn.execute("UPDATE apps SET name = ? WHERE name = ?", (new, old))
            for table in _APP_TABLES:
                conn.execute(f"UPDATE {table} SET app = ? WHERE app = ?", (new, old))
            slugs = conn.execute(
                "SELECT version, slug_path FROM releases WHERE app = ?", (new,)
            ).fetchall()
            moves = [
                (_moved(row["slug_path"], old_root, new_root), new, row["version"]) for row in slugs
            ]
            conn.executemany(
                "UPDATE releases SET slug_path = ? WHERE app = ? AND version = ?", moves
            )
            conn.execute(
                "INSERT INTO app_renames (old, new, requested_at) VALUES (?, ?, ?)",
                (old, new, time.time()),
            )
            return app_from_row(require_app(conn, new))

    def take_app_renames(self) -> list[tuple[str, str]]:
        """The renames the supervisor has not carried out yet, oldest first; clears them."""
        with self._write() as conn:
            rows = conn.execute("SELECT id, old, new FROM app_renames ORDER BY id").fetchall()
            conn.execute("DELETE FROM app_renames WHERE id <= ?", (rows[-1]["id"] if rows else 0,))
        return [(row["old"], row["new"]) for row in rows]
