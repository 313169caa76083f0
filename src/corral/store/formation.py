"""The formation: how many dynos of each process type an app should run.

Only process types of the current release count; a type without a row runs 0 dynos.
The first release with a ``web`` process starts one web dyno, as on Heroku. ``release``
is a phase a deploy runs once before the release starts, never a process type to scale.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from corral.store._db import Database, require_app
from corral.store.errors import Conflict, Invalid
from corral.store.models import FormationEntry

MAX_QUANTITY = 100
#: Procfile entries that are phases of a deploy, not process types: never dynos.
PHASES = frozenset({"release"})


def ensure_default_formation(
    conn: sqlite3.Connection, app: str, process_types: Mapping[str, str]
) -> None:
    """Give ``app`` one web dyno if it has no formation yet and the release has a ``web`` type."""
    if "web" not in process_types:
        return
    exists = conn.execute("SELECT 1 FROM formation WHERE app = ? LIMIT 1", (app,)).fetchone()
    if exists is None:
        conn.execute(
            "INSERT INTO formation (app, process_type, quantity) VALUES (?, 'web', 1)", (app,)
        )


def _process_types(conn: sqlite3.Connection, app: str) -> list[str] | None:
    version = require_app(conn, app)["current_release"]
    if version is None:
        return None
    row = conn.execute(
        "SELECT process_types FROM releases WHERE app = ? AND version = ?", (app, version)
    ).fetchone()
    return [name for name in json.loads(row["process_types"]) if name not in PHASES]


def _entries(conn: sqlite3.Connection, app: str) -> list[FormationEntry]:
    types = _process_types(conn, app) or []
    rows = conn.execute(
        "SELECT process_type, quantity FROM formation WHERE app = ?", (app,)
    ).fetchall()
    quantities = {row["process_type"]: row["quantity"] for row in rows}
    ordered = sorted(types, key=lambda name: (name != "web", name))
    return [FormationEntry(app, name, quantities.get(name, 0)) for name in ordered]


class FormationMixin(Database):
    """Data access for the formation."""

    def formation(self, app: str) -> list[FormationEntry]:
        """One entry per process type of the current release (``web`` first); empty before."""
        with self._read() as conn:
            return _entries(conn, app)

    def scale(self, app: str, quantities: Mapping[str, int]) -> list[FormationEntry]:
        """Set dyno counts, e.g. ``{"web": 3, "worker": 1}``; returns the whole formation."""
        for process_type, quantity in quantities.items():
            if (
                not isinstance(quantity, int)
                or isinstance(quantity, bool)
                or not 0 <= quantity <= MAX_QUANTITY
            ):
                raise Invalid(
                    f"Cannot scale {process_type} to {quantity!r}: give a whole number "
                    f"from 0 to {MAX_QUANTITY}."
                )
        with self._write() as conn:
            types = _process_types(conn, app)
            if types is None:
                raise Conflict(
                    f"{app} has no release yet, so there is nothing to scale; "
                    "deploy it with git push first."
                )
            phases = sorted(set(quantities) & PHASES)
            if phases:
                raise Invalid(
                    f"{phases[0]} is the release phase, which each deploy runs once before "
                    "its release starts; it is not a process type to scale. Scale one of: "
                    f"{', '.join(sorted(types)) or 'none'}."
                )
            unknown = sorted(set(quantities) - set(types))
            if unknown:
                raise Invalid(
                    f"{app} has no process type {', '.join(unknown)}; its current release "
                    f"has: {', '.join(sorted(types)) or 'none'}."
                )
            conn.executemany(
                "INSERT INTO formation (app, process_type, quantity) VALUES (?, ?, ?)"
                " ON CONFLICT (app, process_type) DO UPDATE SET quantity = excluded.quantity",
                [(app, name, quantity) for name, quantity in quantities.items()],
            )
            return _entries(conn, app)
