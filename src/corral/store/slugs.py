"""Which slugs of an app must stay on disk, and a hold on that answer while others go.

A slug is kept while any of these may run from it: the newest ``keep`` releases (the
rollback window), the current release, a pending one, a dyno or a one-off. The answer is
given inside a write transaction, so no rollback or release can start using a slug the
caller is about to remove (a rollback checks the slug is there in its own transaction).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from corral.store._db import Database

__all__ = ["SlugsMixin"]

_KEPT = """
SELECT DISTINCT slug_path FROM releases r WHERE app = :app AND (
    version IN (SELECT version FROM releases WHERE app = :app ORDER BY version DESC LIMIT :keep)
    OR status = 'pending'
    OR version = (SELECT current_release FROM apps WHERE name = :app)
    OR version IN (SELECT release_version FROM dynos WHERE app = :app)
    OR version IN (SELECT release_version FROM one_offs WHERE app = :app)
)
"""


class SlugsMixin(Database):
    """The slugs the store still needs."""

    @contextmanager
    def holding_slugs(self, app: str, keep: int) -> Iterator[set[str]]:
        """The paths of the slugs of ``app`` to keep, with new releases held off until the
        block ends: remove the others inside it (quickly: the store's writes wait)."""
        with self._write() as conn:
            rows = conn.execute(_KEPT, {"app": app, "keep": keep}).fetchall()
            yield {row["slug_path"] for row in rows}
