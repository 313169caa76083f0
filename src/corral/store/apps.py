"""Apps and their custom domains: creating, listing, deleting, maintenance mode."""

from __future__ import annotations

import sqlite3
import time

from corral.store._db import Database, require_app
from corral.store.errors import Conflict, Invalid, NotFound
from corral.store.models import App, Domain
from corral.store.names import random_app_name, validate_app_name, validate_hostname


def _refuse_default_host(app: str, host: str, domain: str) -> None:
    # as a custom domain of another app it would take that app's traffic away
    label, _, rest = host.partition(".")
    if host == domain:
        raise Conflict(f"{host} is the platform's own address; add a domain of your own.")
    if rest != domain:
        return
    if label == app:
        raise Conflict(f"{host} is already {app}'s default address; it needs no domain.")
    raise Conflict(
        f"{host} is the default address of the app {label} (every app is served at "
        f"<app>.{domain}); add a domain of your own instead."
    )


def app_from_row(row: sqlite3.Row) -> App:
    """An :class:`App` from its ``apps`` row."""
    return App(
        name=row["name"],
        created_at=row["created_at"],
        maintenance=bool(row["maintenance"]),
        current_release=row["current_release"],
        memory_quota_mb=row["memory_quota_mb"],
    )


class AppsMixin(Database):
    """Data access for apps and domains."""

    def create_app(self, name: str | None = None) -> App:
        """Create an app named ``name`` (a random readable name when ``None``)."""
        if name is None:
            for _ in range(20):
                try:
                    return self._insert_app(random_app_name())
                except Conflict:
                    continue
            raise Conflict("Could not find a free random app name; give the app a name.")
        return self._insert_app(validate_app_name(name))

    def _insert_app(self, name: str) -> App:
        now = time.time()
        try:
            with self._write() as conn:
                conn.execute("INSERT INTO apps (name, created_at) VALUES (?, ?)", (name, now))
        except sqlite3.IntegrityError:
            raise Conflict(f"The app name {name!r} is already taken; pick another.") from None
        return App(name=name, created_at=now)

    def get_app(self, name: str) -> App:
        """The app called ``name``, or :class:`NotFound`."""
        with self._read() as conn:
            return app_from_row(require_app(conn, name))

    def list_apps(self) -> list[App]:
        """Every app, by name."""
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM apps ORDER BY name").fetchall()
        return [app_from_row(row) for row in rows]

    def delete_app(self, name: str) -> None:
        """Delete an app with its releases, builds, config, formation and domains.

        Its dynos stay listed until the supervisor has stopped them (see the schema).
        """
        with self._write() as conn:
            require_app(conn, name)
            conn.execute("DELETE FROM apps WHERE name = ?", (name,))

    def set_maintenance(self, name: str, enabled: bool) -> App:
        """Turn maintenance mode on or off: the router answers with a maintenance page."""
        with self._write() as conn:
            require_app(conn, name)
            conn.execute("UPDATE apps SET maintenance = ? WHERE name = ?", (int(enabled), name))
            return app_from_row(require_app(conn, name))

    def set_memory_quota(self, name: str, megabytes: int | None) -> App:
        """Set the app's memory quota per dyno (None: back to the platform's default)."""
        if megabytes is not None and (
            isinstance(megabytes, bool)
            or not isinstance(megabytes, int)
            or not 16 <= megabytes <= 65536
        ):
            raise Invalid(
                f"A memory quota of {megabytes!r} MB is not possible; give a whole number of "
                "MB from 16 to 65536, or `default`."
            )
        with self._write() as conn:
            require_app(conn, name)
            conn.execute("UPDATE apps SET memory_quota_mb = ? WHERE name = ?", (megabytes, name))
            return app_from_row(require_app(conn, name))

    def add_domain(self, app: str, hostname: str, platform_domain: str | None = None) -> Domain:
        """Route ``hostname`` to ``app``; a hostname belongs to one app only, and none under
        ``platform_domain`` (``<name>.<domain>`` is app ``name``'s own address)."""
        host = validate_hostname(hostname)
        if platform_domain:
            _refuse_default_host(app, host, platform_domain.lower())
        with self._write() as conn:
            require_app(conn, app)
            owner = conn.execute("SELECT app FROM domains WHERE hostname = ?", (host,)).fetchone()
            if owner is not None:
                where = "this app" if owner["app"] == app else f"the app {owner['app']!r}"
                raise Conflict(f"{host} is already added to {where}; remove it there first.")
            conn.execute("INSERT INTO domains (hostname, app) VALUES (?, ?)", (host, app))
        return Domain(hostname=host, app=app)

    def remove_domain(self, app: str, hostname: str) -> None:
        """Stop routing ``hostname`` to ``app``."""
        host = hostname.strip().lower().removesuffix(".")
        with self._write() as conn:
            require_app(conn, app)
            deleted = conn.execute(
                "DELETE FROM domains WHERE hostname = ? AND app = ?", (host, app)
            ).rowcount
        if not deleted:
            raise NotFound(
                f"{hostname} is not a domain of {app}; run `corral domains -a {app}` to list them."
            )

    def domains(self, app: str | None = None) -> list[Domain]:
        """The custom domains of ``app``, or of every app (for the router) when ``None``."""
        with self._read() as conn:
            if app is None:
                rows = conn.execute("SELECT * FROM domains ORDER BY hostname").fetchall()
            else:
                require_app(conn, app)
                rows = conn.execute(
                    "SELECT * FROM domains WHERE app = ? ORDER BY hostname", (app,)
                ).fetchall()
        return [Domain(hostname=row["hostname"], app=row["app"]) for row in rows]
