"""Dynos as the supervisor observes them; it is the only writer of these rows.

Rows are not tied to the app by a foreign key: a deleted app's dynos stay listed until the
manager has stopped them and called :meth:`DynosMixin.delete_dyno`.
"""

from __future__ import annotations

import sqlite3
import time

from corral.store._db import Database
from corral.store.errors import NotFound
from corral.store.models import Dyno

_STATES = ("starting", "up", "crashed", "stopping")


def _dyno_from_row(row: sqlite3.Row) -> Dyno:
    return Dyno(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - Row is not a dict


def _order(dyno: Dyno) -> tuple[str, str, int, str]:
    """``web.2`` before ``web.10``."""
    _, _, index = dyno.name.rpartition(".")
    return (dyno.app, dyno.process_type, int(index) if index.isdigit() else 0, dyno.name)


class DynosMixin(Database):
    """Data access for observed dyno state."""

    def upsert_dyno(self, dyno: Dyno) -> Dyno:
        """Record ``dyno`` as observed now, replacing what was known about it."""
        if dyno.state not in _STATES:
            raise ValueError(f"unknown dyno state {dyno.state!r}")
        with self._write() as conn:
            conn.execute(
                "INSERT INTO dynos (app, name, process_type, release_version, pid,"
                " pid_start_time, port, state, restarts, next_restart_at, since)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (app, name) DO UPDATE SET"
                " process_type = excluded.process_type,"
                " release_version = excluded.release_version, pid = excluded.pid,"
                " pid_start_time = excluded.pid_start_time, port = excluded.port,"
                " state = excluded.state, restarts = excluded.restarts,"
                " next_restart_at = excluded.next_restart_at, since = excluded.since",
                (
                    dyno.app,
                    dyno.name,
                    dyno.process_type,
                    dyno.release_version,
                    dyno.pid,
                    dyno.pid_start_time,
                    dyno.port,
                    dyno.state,
                    dyno.restarts,
                    dyno.next_restart_at,
                    dyno.since,
                ),
            )
        return dyno

    def dynos(self, app: str | None = None) -> list[Dyno]:
        """The dynos of ``app`` (or of every app), by process type and number."""
        with self._read() as conn:
            if app is None:
                rows = conn.execute("SELECT * FROM dynos").fetchall()
            else:
                rows = conn.execute("SELECT * FROM dynos WHERE app = ?", (app,)).fetchall()
        return sorted((_dyno_from_row(row) for row in rows), key=_order)

    def request_dynos(self, app: str, action: str, target: str | None = None) -> None:
        """Ask the manager to ``restart`` or ``stop`` dynos: all, one type, or one dyno."""
        if action not in ("restart", "stop"):
            raise ValueError(f"unknown dyno action {action!r}")
        with self._write() as conn:
            row = conn.execute("SELECT 1 FROM apps WHERE name = ?", (app,)).fetchone()
            if row is None:
                raise NotFound(f"There is no app named {app}; see `corral apps`.")
            if target is not None:
                names = {
                    r["name"] for r in conn.execute("SELECT name FROM dynos WHERE app = ?", (app,))
                }
                types = {name.rsplit(".", 1)[0] for name in names}
                if target not in names | types:
                    raise NotFound(
                        f"{target} is neither a dyno nor a process type running in {app}; "
                        "see `corral ps`."
                    )
            conn.execute(
                "INSERT INTO dyno_requests (app, action, target, requested_at) VALUES (?, ?, ?, ?)",
                (app, action, target, time.time()),
            )

    def take_dyno_requests(self) -> list[tuple[str, str, str | None]]:
        """The pending restart/stop requests as (app, action, target), oldest first; clears them."""
        with self._write() as conn:
            rows = conn.execute(
                "SELECT id, app, action, target FROM dyno_requests ORDER BY id"
            ).fetchall()
            conn.execute(
                "DELETE FROM dyno_requests WHERE id <= ?", (rows[-1]["id"] if rows else 0,)
            )
        return [(row["app"], row["action"], row["target"]) for row in rows]

    def delete_dyno(self, app: str, name: str) -> bool:
        """Forget a dyno the manager has stopped; ``False`` if it was not recorded."""
        with self._write() as conn:
            deleted = conn.execute(
                "DELETE FROM dynos WHERE app = ? AND name = ?", (app, name)
            ).rowcount
        return deleted > 0
