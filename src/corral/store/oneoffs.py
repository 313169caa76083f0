"""One-off dynos as the API records them: written by the API process that started them.

The supervisor owns the ``dynos`` table and would adopt or stop any row it finds there, so
one-offs live in a table of their own that it never reads. A row outlives its process when
the API that started it dies; readers check the pid and its start time and forget the row.
"""

from __future__ import annotations

from corral.store._db import Database
from corral.store.models import OneOff

_COLUMNS = (
    "app", "name", "command", "release_version", "pid", "pid_start_time", "attached",
    "started_at",
)  # fmt: skip


class OneOffsMixin(Database):
    """Data access for running one-off dynos."""

    def record_one_off(self, one_off: OneOff) -> OneOff:
        """Record a one-off that has just started (replacing a dead one of the same name)."""
        with self._write() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO one_offs ({', '.join(_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(_COLUMNS))})",
                tuple(getattr(one_off, column) for column in _COLUMNS),
            )
        return one_off

    def one_offs(self, app: str | None = None) -> list[OneOff]:
        """The one-offs recorded for ``app`` (or every app), oldest first (some may have ended)."""
        with self._read() as conn:
            if app is None:
                rows = conn.execute("SELECT * FROM one_offs ORDER BY started_at").fetchall()
            else:
                rows = conn.execute(
                    "SELECT * FROM one_offs WHERE app = ? ORDER BY started_at", (app,)
                ).fetchall()
        return [
            OneOff(**{**{key: row[key] for key in _COLUMNS}, "attached": bool(row["attached"])})
            for row in rows
        ]

    def delete_one_off(self, app: str, name: str, pid: int | None = None) -> None:
        """Forget a one-off that ended (only the one with ``pid``, when given)."""
        with self._write() as conn:
            if pid is None:
                conn.execute("DELETE FROM one_offs WHERE app = ? AND name = ?", (app, name))
            else:
                conn.execute(
                    "DELETE FROM one_offs WHERE app = ? AND name = ? AND pid = ?",
                    (app, name, pid),
                )
