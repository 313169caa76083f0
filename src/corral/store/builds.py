"""Builds: one record per run of the builder, from pushed ref to slug or failure."""

from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path

from corral.store._db import Database, require_app
from corral.store.errors import NotFound
from corral.store.models import Build, BuildStatus

_STATUSES = ("pending", "running", "succeeded", "failed")
_FINISHED = ("succeeded", "failed")


def new_build_id() -> str:
    """A unique, time-sortable build id such as ``20261124100000-3fa2c1``."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _build_from_row(row: sqlite3.Row) -> Build:
    return Build(
        id=row["id"],
        app=row["app"],
        status=row["status"],
        source_ref=row["source_ref"],
        slug_id=row["slug_id"],
        log_path=None if row["log_path"] is None else Path(row["log_path"]),
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


def _require_build(conn: sqlite3.Connection, build_id: str) -> Build:
    row = conn.execute("SELECT * FROM builds WHERE id = ?", (build_id,)).fetchone()
    if row is None:
        raise NotFound(f"No build {build_id!r}; check the id printed when the build started.")
    return _build_from_row(row)


class BuildsMixin(Database):
    """Data access for builds."""

    def create_build(
        self,
        app: str,
        source_ref: str = "",
        *,
        build_id: str | None = None,
        log_path: str | Path | None = None,
    ) -> Build:
        """Record a pending build of ``app`` (``source_ref`` is the pushed commit or ref)."""
        build = Build(
            id=build_id or new_build_id(),
            app=app,
            status="pending",
            source_ref=source_ref,
            slug_id=None,
            log_path=None if log_path is None else Path(log_path),
            created_at=time.time(),
        )
        with self._write() as conn:
            require_app(conn, app)
            conn.execute(
                "INSERT INTO builds (id, app, status, source_ref, log_path, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    build.id,
                    app,
                    build.status,
                    source_ref,
                    None if log_path is None else str(log_path),
                    build.created_at,
                ),
            )
        return build

    def update_build(
        self,
        build_id: str,
        *,
        status: BuildStatus | None = None,
        slug_id: str | None = None,
        log_path: str | Path | None = None,
    ) -> Build:
        """Change a build's status, slug or log; a finishing status stamps ``finished_at``."""
        if status is not None and status not in _STATUSES:
            raise ValueError(f"unknown build status {status!r}")
        with self._write() as conn:
            build = _require_build(conn, build_id)
            conn.execute(
                "UPDATE builds SET status = ?, slug_id = ?, log_path = ?, finished_at = ?"
                " WHERE id = ?",
                (
                    status or build.status,
                    slug_id if slug_id is not None else build.slug_id,
                    str(log_path) if log_path is not None else _str_or_none(build.log_path),
                    time.time() if status in _FINISHED else build.finished_at,
                    build_id,
                ),
            )
            return _require_build(conn, build_id)

    def get_build(self, build_id: str) -> Build:
        """The build ``build_id``, or :class:`NotFound`."""
        with self._read() as conn:
            return _require_build(conn, build_id)

    def builds(self, app: str) -> list[Build]:
        """The builds of ``app``, newest first."""
        with self._read() as conn:
            require_app(conn, app)
            rows = conn.execute(
                "SELECT * FROM builds WHERE app = ? ORDER BY created_at DESC, id DESC", (app,)
            ).fetchall()
        return [_build_from_row(row) for row in rows]

    def fail_unfinished_builds(self) -> int:
        """Mark builds still pending or running as failed; returns how many.

        Builds run inside the API's processes, so when a fresh API starts, any build the
        store still calls unfinished was cut short with the old one.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE builds SET status = 'failed', finished_at = ?"
                " WHERE status IN ('pending', 'running')",
                (time.time(),),
            )
            return cursor.rowcount


def _str_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)
