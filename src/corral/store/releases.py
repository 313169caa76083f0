"""Releases and config vars: deploys, config changes and rollbacks each make a new release.

A release is immutable: slug + config snapshot + process types, numbered v1, v2, … per app
(allocated inside ``BEGIN IMMEDIATE``, so concurrent writers never share a number).
The ``config_vars`` table always holds the config of the app's current release; before the
first deploy it holds the config set ahead of it, which the first release snapshots.
A release becomes current when it succeeds, unless a newer one already has (newest wins);
a failed release never becomes current. Deploys, and the config changes and rollbacks of a
deployed app, make a *pending* release: the supervisor rolls it out and marks it succeeded
(it becomes current, with its config) or failed (the previous release keeps serving and
stays current). While a release is pending, config changes and rollbacks are refused so
they cannot be lost under it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from corral.store._db import Database, require_app
from corral.store.errors import Conflict, Invalid, NotFound
from corral.store.formation import ensure_default_formation
from corral.store.models import Release, ReleaseStatus
from corral.store.names import validate_config_key, validate_config_value


def release_from_row(row: sqlite3.Row) -> Release:
    """A :class:`Release` from its ``releases`` row."""
    return Release(
        app=row["app"],
        version=row["version"],
        slug_id=row["slug_id"],
        slug_path=Path(row["slug_path"]),
        description=row["description"],
        config=json.loads(row["config"]),
        process_types=json.loads(row["process_types"]),
        status=row["status"],
        created_at=row["created_at"],
        failure_reason=row["failure_reason"],
        failure_excerpt=tuple(json.loads(row["failure_excerpt"] or "[]")),
    )


class ReleasesMixin(Database):
    """Data access for releases and config vars."""

    def create_release(
        self,
        app: str,
        slug_id: str,
        slug_path: str | Path,
        process_types: Mapping[str, str],
        description: str,
        config: Mapping[str, str] | None = None,
        status: ReleaseStatus = "succeeded",
    ) -> Release:
        """Record the next release of ``app``; it snapshots the app's config unless given one.

        ``status="pending"`` is for deploys with a release phase: call
        :meth:`mark_release_succeeded` or :meth:`mark_release_failed` when it ends.
        """
        if status not in ("pending", "succeeded"):
            raise ValueError(f"a new release is pending or succeeded, not {status!r}")
        if config is not None:
            config = _validated(config)
        with self._write() as conn:
            require_app(conn, app)
            snapshot = _config_vars(conn, app) if config is None else dict(config)
            release = _insert_release(
                conn, app, slug_id, Path(slug_path), description, snapshot, process_types, status
            )
            if status == "succeeded":
                _make_current(conn, release)
        return release

    def mark_release_succeeded(self, app: str, version: int) -> Release:
        """Mark a pending release succeeded; it becomes current unless a newer one already is."""
        with self._write() as conn:
            release = _require_release(conn, app, version)
            if release.status == "failed":
                raise Conflict(f"{release.name} of {app} failed; deploy again to release it.")
            if release.status == "pending":
                conn.execute(
                    "UPDATE releases SET status = 'succeeded' WHERE app = ? AND version = ?",
                    (app, version),
                )
                release = _require_release(conn, app, version)
                _make_current(conn, release)
                # an older one still pending (a config change a deploy overtook) never rolls
                # out now: fail it, or it would refuse config changes forever
                conn.execute(
                    "UPDATE releases SET status = 'failed', failure_reason = ?"
                    " WHERE app = ? AND version < ? AND status = 'pending'",
                    (f"{release.name} was released before it rolled out", app, version),
                )
        return release

    def mark_release_failed(
        self, app: str, version: int, *, reason: str | None = None, excerpt: Sequence[str] = ()
    ) -> Release:
        """Mark a pending release failed, with why, in one write: it never becomes current.

        ``reason`` says what went wrong and ``excerpt`` holds the new dynos' last log lines;
        a deploy waiting on the release reads both with the status. Marking it failed again
        without a reason keeps the one recorded.
        """
        with self._write() as conn:
            release = _require_release(conn, app, version)
            if release.status == "succeeded":
                raise Conflict(
                    f"{release.name} of {app} has already succeeded; roll back to undo it."
                )
            conn.execute(
                "UPDATE releases SET status = 'failed',"
                " failure_reason = COALESCE(?, failure_reason),"
                " failure_excerpt = COALESCE(?, failure_excerpt)"
                " WHERE app = ? AND version = ?",
                (reason, json.dumps(list(excerpt)) if reason is not None else None, app, version),
            )
            return _require_release(conn, app, version)

    def releases(self, app: str) -> list[Release]:
        """Every release of ``app``, newest first."""
        with self._read() as conn:
            require_app(conn, app)
            rows = conn.execute(
                "SELECT * FROM releases WHERE app = ? ORDER BY version DESC", (app,)
            ).fetchall()
        return [release_from_row(row) for row in rows]

    def pending_releases(self, app: str) -> list[Release]:
        """The releases of ``app`` still waiting for their rollout, newest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM releases WHERE app = ? AND status = 'pending' ORDER BY version DESC",
                (app,),
            ).fetchall()
        return [release_from_row(row) for row in rows]

    def fail_superseded_pending(self) -> None:
        """Mark failed every pending release older than its app's current one: it can never
        roll out (only the newest pending release is retried)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE releases SET status = 'failed' WHERE status = 'pending' AND version < "
                "(SELECT current_release FROM apps WHERE apps.name = releases.app)"
            )

    def release(self, app: str, version: int) -> Release:
        """Release ``version`` of ``app``, or :class:`NotFound`."""
        with self._read() as conn:
            return _require_release(conn, app, version)

    def current_release(self, app: str) -> Release | None:
        """The release ``app`` runs now, or ``None`` before its first successful deploy."""
        with self._read() as conn:
            return _current(conn, app)

    def config(self, app: str) -> dict[str, str]:
        """The config vars of ``app``: its current release's, or those set before any deploy."""
        with self._read() as conn:
            require_app(conn, app)
            return _config_vars(conn, app)

    def set_config(
        self, app: str, changes: Mapping[str, str], unset: Iterable[str] = ()
    ) -> Release | None:
        """Set and unset config vars; a deployed app gets a new pending release, same slug.

        Returns the new release (current, with its config, once its rollout succeeds), the
        current one when nothing changed, or ``None`` when the app has no release yet (the
        config then waits for the first deploy).
        """
        changes = _validated(changes)
        unset = [validate_config_key(key) for key in unset]
        both = sorted(set(changes) & set(unset))
        if both:
            raise Invalid(f"{', '.join(both)} cannot be both set and unset; choose one.")
        with self._write() as conn:
            require_app(conn, app)
            _refuse_while_pending(conn, app, "changing config vars")
            old = _config_vars(conn, app)
            new = {**old, **changes}
            for key in unset:
                new.pop(key, None)
            current = _current(conn, app)
            if new == old:
                return current
            if current is None:
                _replace_config_vars(conn, app, new)
                return None
            set_keys = [key for key in changes if old.get(key) != changes[key]]
            removed = [key for key in unset if key in old]
            parts = [f"Set {', '.join(set_keys)} config vars"] if set_keys else []
            parts += [f"Remove {', '.join(removed)} config vars"] if removed else []
            release = _insert_release(
                conn,
                app,
                current.slug_id,
                current.slug_path,
                "; ".join(parts),
                new,
                current.process_types,
                "pending",
            )
            return release

    def rollback(self, app: str, version: int | None = None, *, keep: int | None = None) -> Release:
        """Make a new pending release restoring the slug and config of ``version``.

        The default target is the newest succeeded release before the current one. The new
        release becomes current once its rollout succeeds. Given ``keep`` (the releases
        whose slugs stay on disk), a target whose slug was removed is refused.
        """
        with self._write() as conn:
            require_app(conn, app)
            _refuse_while_pending(conn, app, "rolling back")
            current = _current(conn, app)
            if current is None:
                raise Conflict(f"{app} has no releases yet, so there is nothing to roll back.")
            if version is None:
                row = conn.execute(
                    "SELECT * FROM releases WHERE app = ? AND version < ? AND status = 'succeeded'"
                    " ORDER BY version DESC LIMIT 1",
                    (app, current.version),
                ).fetchone()
                if row is None:
                    raise Conflict(
                        f"{current.name} is the first release of {app}; there is nothing "
                        "to roll back to."
                    )
                target = release_from_row(row)
            else:
                target = _require_release(conn, app, version)
                if target.version == current.version:
                    raise Conflict(
                        f"{target.name} is already the current release of {app}; pick an older "
                        f"one from `corral releases -a {app}`."
                    )
                if target.status != "succeeded":
                    raise Conflict(
                        f"{target.name} of {app} is {target.status}, so it cannot be restored; "
                        f"pick a succeeded release from `corral releases -a {app}`."
                    )
            if keep is not None:
                _refuse_removed_slug(target, keep)
            release = _insert_release(
                conn,
                app,
                target.slug_id,
                target.slug_path,
                f"Rollback to {target.name}",
                target.config,
                target.process_types,
                "pending",
            )
            return release


def _refuse_removed_slug(target: Release, keep: int) -> None:
    # checked inside the write: the pruner removes slugs holding the same lock
    if not Path(target.slug_path).is_dir():
        raise Conflict(
            f"The slug of {target.name} was removed to free disk space (corral keeps the slugs "
            f"of the last {keep} releases of each app), so it cannot be restored; pick a newer "
            f"release from `corral releases -a {target.app}`."
        )


def _validated(config: Mapping[str, str]) -> dict[str, str]:
    return {
        validate_config_key(key): validate_config_value(key, value) for key, value in config.items()
    }


def _config_vars(conn: sqlite3.Connection, app: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT key, value FROM config_vars WHERE app = ? ORDER BY key", (app,)
    ).fetchall()
    return {row["key"]: row["value"] for row in rows}


def _replace_config_vars(conn: sqlite3.Connection, app: str, config: Mapping[str, str]) -> None:
    conn.execute("DELETE FROM config_vars WHERE app = ?", (app,))
    conn.executemany(
        "INSERT INTO config_vars (app, key, value) VALUES (?, ?, ?)",
        [(app, key, value) for key, value in config.items()],
    )


def _require_release(conn: sqlite3.Connection, app: str, version: int) -> Release:
    require_app(conn, app)
    row = conn.execute(
        "SELECT * FROM releases WHERE app = ? AND version = ?", (app, version)
    ).fetchone()
    if row is None:
        raise NotFound(
            f"{app} has no release v{version}; run `corral releases -a {app}` to list them."
        )
    return release_from_row(row)


def _current(conn: sqlite3.Connection, app: str) -> Release | None:
    version = require_app(conn, app)["current_release"]
    return None if version is None else _require_release(conn, app, version)


def _refuse_while_pending(conn: sqlite3.Connection, app: str, doing: str) -> None:
    row = conn.execute(
        "SELECT version FROM releases WHERE app = ? AND status = 'pending' ORDER BY version",
        (app,),
    ).fetchone()
    if row is not None:
        raise Conflict(
            f"Release v{row['version']} of {app} is still rolling out; wait for it to "
            f"finish (`corral releases -a {app}` shows when), then try {doing} again."
        )


def _insert_release(
    conn: sqlite3.Connection,
    app: str,
    slug_id: str,
    slug_path: Path,
    description: str,
    config: Mapping[str, str],
    process_types: Mapping[str, str],
    status: ReleaseStatus,
) -> Release:
    """Insert the next version; the caller holds the write lock, so the number is unique."""
    (last,) = conn.execute(
        "SELECT COALESCE(MAX(version), 0) FROM releases WHERE app = ?", (app,)
    ).fetchone()
    release = Release(
        app=app,
        version=last + 1,
        slug_id=slug_id,
        slug_path=slug_path,
        description=description,
        config=dict(config),
        process_types=dict(process_types),
        status=status,
        created_at=time.time(),
    )
    conn.execute(
        "INSERT INTO releases (app, version, slug_id, slug_path, description, config,"
        " process_types, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            app,
            release.version,
            slug_id,
            str(slug_path),
            description,
            json.dumps(release.config, sort_keys=True),
            json.dumps(release.process_types),
            status,
            release.created_at,
        ),
    )
    return release


def _make_current(conn: sqlite3.Connection, release: Release) -> None:
    """Point the app at ``release`` (unless a newer one is current) and adopt its config."""
    current = require_app(conn, release.app)["current_release"]
    if current is not None and current > release.version:
        return
    conn.execute(
        "UPDATE apps SET current_release = ? WHERE name = ?", (release.version, release.app)
    )
    _replace_config_vars(conn, release.app, release.config)
    ensure_default_formation(conn, release.app, release.process_types)
