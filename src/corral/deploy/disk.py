"""Disk use: remove the slugs and environments nothing needs any more, and say what is used.

The deploy pipeline prunes after each release, holding the app's deploy lock (so no
other deploy of that app is building or releasing meanwhile): the slugs of the app that
no release in the rollback window (``Settings.keep_releases``), the current or a pending
release, a dyno or a one-off runs from are removed; then every environment no slug on
disk uses, untouched for :data:`ENV_GRACE` seconds, and only while holding its lock (a
build making or reusing it holds the same lock and touches it).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from corral.builder.environment import MARKER, lock_path
from corral.builder.slug import METADATA, tree_size
from corral.builder.source import remove_tree
from corral.config import Settings
from corral.deploy.git import repo_path
from corral.files import locked
from corral.store import Store

__all__ = ["ENV_GRACE", "Pruned", "disk_use", "prune"]

#: Seconds an unused environment is kept after a build last used it: a build of another
#: app may have just chosen it, and records that in its slug only at the end.
ENV_GRACE = 3600.0
#: The prefix a slug or environment is renamed to before it is removed.
_REMOVING = ".removing-"


@dataclass(frozen=True)
class Pruned:
    """What one prune removed, and how many bytes that freed."""

    slugs: list[str]
    environments: list[str]
    freed: int


def prune(settings: Settings, store: Store, app: str, *, env_grace: float = ENV_GRACE) -> Pruned:
    """Remove the slugs of ``app`` and the environments nothing needs (see the module)."""
    slugs = _doomed_slugs(settings, store, app)
    freed = _remove(slugs)
    envs = _doomed_environments(settings, env_grace)  # once those slugs no longer use them
    freed += _remove(envs)
    return Pruned(
        [p.name.removeprefix(_REMOVING) for p in slugs],
        [p.name.removeprefix(_REMOVING) for p in envs],
        freed,
    )


def _remove(paths: list[Path]) -> int:
    freed = 0
    for path in paths:
        freed += tree_size(path)
        remove_tree(path)
    return freed


def _doomed_slugs(settings: Settings, store: Store, app: str) -> list[Path]:
    """Rename the slugs to remove out of the way, inside the store's hold on the kept ones:
    a rollback starting now sees the slug gone (and says so) or keeps it."""
    directory = settings.slugs_dir(app)
    if not directory.is_dir():
        return []
    doomed = [entry for entry in directory.iterdir() if entry.name.startswith(_REMOVING)]
    with store.holding_slugs(app, settings.keep_releases) as kept:
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith(".") or str(entry) in kept:  # .building-*: in progress
                continue
            moved = directory / f"{_REMOVING}{entry.name}"
            os.rename(entry, moved)
            doomed.append(moved)
    return doomed


def _used_environments(settings: Settings) -> set[str]:
    """The hashes of the environments the slugs on disk (every app's) run from."""
    used = set()
    for metadata in settings.apps_dir.glob(f"*/slugs/*/{METADATA}"):
        if metadata.parents[len(METADATA.parts) - 1].name.startswith(_REMOVING):
            continue
        try:
            used.add(json.loads(metadata.read_text())["env_hash"])
        except (OSError, ValueError, KeyError):
            continue
    return used


def _doomed_environments(settings: Settings, grace: float) -> list[Path]:
    if not settings.envs_dir.is_dir():
        return []
    used = _used_environments(settings)
    doomed = [e for e in settings.envs_dir.iterdir() if e.name.startswith(_REMOVING)]
    for env in sorted(settings.envs_dir.iterdir()):
        if not env.is_dir() or env.name.startswith(".") or env.name in used:
            continue
        with locked(lock_path(settings, env.name), blocking=False) as free:
            if not free or _last_used(env) > time.time() - grace:  # being built, or used lately
                continue
            moved = settings.envs_dir / f"{_REMOVING}{env.name}"
            os.rename(env, moved)
            doomed.append(moved)
    return doomed


def _last_used(env: Path) -> float:
    marker = env / MARKER
    return (marker if marker.exists() else env).stat().st_mtime


def disk_use(settings: Settings, app: str) -> dict[str, int]:
    """Bytes ``app`` takes on disk: its slugs, its git repository, its logs, and the total."""
    use = {
        "slugs": tree_size(settings.slugs_dir(app)),
        "repo": tree_size(repo_path(settings, app)),
        "logs": tree_size(settings.logs_dir(app)),
    }
    return {**use, "total": sum(use.values())}
