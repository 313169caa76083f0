"""``apps:rename``: the store's rows at once, then the app's files, without stopping a dyno.

Running dynos work from their slug directory (gunicorn puts its absolute path on
``sys.path`` and re-imports the app in every new worker), so the slugs are not moved under
them: each is hard-linked into the new name's directory first (slugs are read-only, so the
links are as good as copies and cost no space), the releases point there, and the
supervisor rolls the dynos onto the new paths with zero downtime before it removes the old
links. The repository, release-phase output and logs move outright.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from corral.api import context
from corral.appusers import AppUsers
from corral.builder.source import remove_tree
from corral.deploy.git import move_repo
from corral.deploy.pipeline import deploy_lock
from corral.store import App, Conflict
from corral.store.names import validate_app_name

__all__ = ["rename_app"]


def rename_app(old: str, new: str) -> App:
    """Rename ``old`` to ``new``: rows, repository, slugs, logs, domains and routes follow."""
    store = context.store()
    settings = context.settings()
    store.get_app(old)
    new = validate_app_name(new)
    host = f"{new}.{settings.domain}"
    if any(domain.hostname == host for domain in store.domains()):
        raise Conflict(f"{host} is a custom domain of another app; pick another name.")
    if new == old:
        raise Conflict(f"The app is already called {old}; give it a new name.")
    if any(existing.name == new for existing in store.list_apps()):
        raise Conflict(f"The app name {new!r} is already taken; pick another.")
    old_root, new_root = settings.apps_dir / old, settings.apps_dir / new
    with deploy_lock(settings, old, blocking=False) as free:
        if not free:
            raise Conflict(f"{old} is being deployed; rename it when the deploy has finished.")
        remove_tree(new_root)  # left by an app of that name whose files outlived it
        _link_slugs(settings.slugs_dir(old), settings.slugs_dir(new))
        try:
            renamed = store.rename_app(old, new, old_root, new_root)
        except BaseException:
            remove_tree(new_root)
            raise
        if settings.isolation:
            AppUsers(settings).rename(old, new)
        move_repo(settings, old, new)
        _move(old_root / "release-output", new_root / "release-output")
        _merge_logs(settings.logs_dir(old), settings.logs_dir(new))
        (old_root / "deploy.lock").unlink(missing_ok=True)  # a deploy waiting on it finds no app
    if not settings.slugs_dir(old).exists():
        remove_tree(old_root)  # no dyno ran from a slug: nothing is left to roll over
    return renamed


def _link_slugs(source: Path, target: Path) -> None:
    if not source.is_dir():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, symlinks=True, copy_function=os.link)


def _move(source: Path, target: Path) -> None:
    if source.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)


def _merge_logs(source: Path, target: Path) -> None:
    """Move the log files over; a file the supervisor already began under the new name
    gets the old lines in front, so each file still reads oldest first."""
    if not source.is_dir():
        return
    if not target.exists():
        source.rename(target)
        return
    for path in sorted(source.iterdir()):
        moved = target / path.name
        if not moved.exists():
            path.rename(moved)
            continue
        merged = moved.with_name(f".{moved.name}.merging")  # not *.log: readers skip it
        with merged.open("wb") as out:
            for part in (path, moved):
                with part.open("rb") as lines:
                    shutil.copyfileobj(lines, out)
        merged.replace(moved)
        path.unlink()
    shutil.rmtree(source, ignore_errors=True)
