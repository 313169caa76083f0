"""Add-ons and their attachments: which app owns each, and as which config var it is
attached to which apps."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import astuple

from corral.store._db import Database, require_app
from corral.store.errors import Conflict, NotFound
from corral.store.models import Addon, Attachment


def _addon(row: sqlite3.Row) -> Addon:
    return Addon(
        row["name"], row["app"], row["service"], row["plan"], row["url"], row["created_at"],
        row["server"],
    )  # fmt: skip


def _attachment(row: sqlite3.Row) -> Attachment:
    return Attachment(row["addon"], row["app"], row["var"])


class AddonsMixin(Database):
    """Data access for add-ons."""

    def create_addon(self, addon: Addon, var: str) -> None:
        """Record ``addon``, attached to its own app as ``var``."""
        with self._write() as conn:
            require_app(conn, addon.app)
            _refuse_taken(conn, addon.app, var)
            conn.execute(
                "INSERT INTO addons (name, app, service, plan, url, created_at, server) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                astuple(addon),
            )
            conn.execute(
                "INSERT INTO addon_attachments (addon, app, var) VALUES (?, ?, ?)",
                (addon.name, addon.app, var),
            )

    def attach_addon(self, name: str, app: str, var: str) -> Attachment:
        """Attach add-on ``name`` to ``app`` as ``var`` too."""
        with self._write() as conn:
            require_app(conn, app)
            _require_addon(conn, name)
            _refuse_taken(conn, app, var)
            conn.execute(
                "INSERT INTO addon_attachments (addon, app, var) VALUES (?, ?, ?)",
                (name, app, var),
            )
        return Attachment(name, app, var)

    def detach_addon(self, name: str, app: str) -> list[Attachment]:
        """Remove the attachments of add-on ``name`` to ``app``; those removed."""
        with self._write() as conn:
            rows = conn.execute(
                "SELECT * FROM addon_attachments WHERE addon = ? AND app = ?", (name, app)
            ).fetchall()
            conn.execute("DELETE FROM addon_attachments WHERE addon = ? AND app = ?", (name, app))
        return [_attachment(row) for row in rows]

    def get_addon(self, name: str) -> Addon:
        """The add-on called ``name``, or NotFound."""
        with self._read() as conn:
            return _addon(_require_addon(conn, name))

    def addons(self, app: str | None = None) -> list[Addon]:
        """Every add-on (or those attached to ``app``), by name."""
        with self._read() as conn:
            if app is None:
                rows = conn.execute("SELECT * FROM addons ORDER BY name").fetchall()
            else:
                require_app(conn, app)
                rows = conn.execute(
                    "SELECT DISTINCT addons.* FROM addons JOIN addon_attachments AS a "
                    "ON a.addon = addons.name WHERE a.app = ? ORDER BY addons.name",
                    (app,),
                ).fetchall()
        return [_addon(row) for row in rows]

    def attachments(self, addon: str | None = None, app: str | None = None) -> list[Attachment]:
        """The attachments of ``addon`` and/or to ``app`` (every one with neither)."""
        query, args = "SELECT * FROM addon_attachments WHERE 1", list[str]()
        if addon is not None:
            query, args = query + " AND addon = ?", [*args, addon]
        if app is not None:
            query, args = query + " AND app = ?", [*args, app]
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY app, var", args).fetchall()
        return [_attachment(row) for row in rows]

    def update_addon_url(self, name: str, url: str) -> None:
        """Record the add-on's new URL (its credentials were rotated)."""
        with self._write() as conn:
            _require_addon(conn, name)
            conn.execute("UPDATE addons SET url = ? WHERE name = ?", (url, name))

    def delete_addon(self, name: str) -> None:
        """Forget add-on ``name`` and its attachments (its database is dropped by the caller)."""
        with self._write() as conn:
            conn.execute("DELETE FROM addons WHERE name = ?", (name,))


def new_addon(
    name: str, app: str, service: str, plan: str, url: str, server: str | None = None
) -> Addon:
    """An add-on record made now."""
    return Addon(name, app, service, plan, url, time.time(), server)


def _require_addon(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM addons WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"No add-on named {name!r}; run `corral addons` to list them.")
    return row


def _refuse_taken(conn: sqlite3.Connection, app: str, var: str) -> None:
    row = conn.execute(
        "SELECT addon FROM addon_attachments WHERE app = ? AND var = ?", (app, var)
    ).fetchone()
    if row is not None:
        raise Conflict(
            f"{app} already has {row['addon']} attached as {var}; choose another name with --as."
        )
