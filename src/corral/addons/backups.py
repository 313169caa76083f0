"""Backups of ``postgresql`` add-ons: ``pg_dump`` in its custom format, kept under the
add-on's directory, restored with ``pg_restore`` in one transaction.

Each backup is ``addons/<addon>/backups/<id>.dump`` (root-only, 0600), its id ``b001``,
``b002``, ... A backup that fails leaves no file and keeps every earlier one. The last
backup taken before an add-on (or its app) is destroyed is kept for
:data:`FINAL_KEEP_DAYS` days after, then removed by the next backup or destroy.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from corral.addons.cluster import ClusterError, DatabaseServer, reason
from corral.addons.naming import identifier
from corral.config import Settings
from corral.errors import UserError

__all__ = ["FINAL_KEEP_DAYS", "Backup", "capture", "listing", "path_of", "restore"]

#: Days the last backup of a destroyed add-on is kept.
FINAL_KEEP_DAYS = 7
#: Seconds a dump or a restore may take.
DUMP_TIMEOUT = 3600
_ID = re.compile(r"b(\d{3,})")
#: The marker of an add-on destroyed: the time it was, for the sweep of final backups.
_DESTROYED = "destroyed"


@dataclass(frozen=True)
class Backup:
    """One backup of an add-on."""

    id: str
    addon: str
    size: int
    created_at: float
    path: Path


def _dir(settings: Settings, addon: str) -> Path:
    return settings.addons_dir / addon / "backups"


def listing(settings: Settings, addon: str) -> list[Backup]:
    """The add-on's backups, oldest first."""
    found = []
    directory = _dir(settings, addon)
    for path in directory.glob("b*.dump") if directory.is_dir() else []:
        if _ID.fullmatch(path.stem):
            stat = path.stat()
            found.append(Backup(path.stem, addon, stat.st_size, stat.st_mtime, path))
    return sorted(found, key=lambda b: int(b.id[1:]))


def path_of(settings: Settings, addon: str, backup: str | None) -> Backup:
    """Backup ``backup`` of the add-on (its newest with None), or a UserError."""
    backups = listing(settings, addon)
    chosen = [b for b in backups if backup in (None, b.id)]
    if not chosen:
        if backup is None:
            raise UserError(
                f"{addon} has no backups yet; take one with `corral pg:backups:capture`."
            )
        raise UserError(f"{addon} has no backup {backup}; `corral pg:backups` lists them.")
    return chosen[-1]


def capture(
    settings: Settings, server: DatabaseServer, addon: str, *, final: bool = False
) -> Backup:
    """Dump ``addon``'s database to a new backup; with ``final`` (it is being destroyed) it
    is kept :data:`FINAL_KEEP_DAYS` days after."""
    sweep(settings)
    directory = _dir(settings, addon)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = listing(settings, addon)
    number = int(existing[-1].id[1:]) + 1 if existing else 1
    target = directory / f"b{number:03d}.dump"
    partial = target.with_suffix(".partial")
    how = server.invocation("pg_dump", "--format=custom", "--no-owner", identifier(addon))
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            done = how.run(DUMP_TIMEOUT, stdout=out, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise ClusterError(
                f"The backup of {addon} failed ({reason(done.stderr)}); "
                "the earlier backups are kept."
            )
        partial.rename(target)
    finally:
        partial.unlink(missing_ok=True)
    if final:
        (directory.parent / _DESTROYED).write_text(f"{time.time()}\n")
    stat = target.stat()
    return Backup(target.stem, addon, stat.st_size, stat.st_mtime, target)


def restore(settings: Settings, server: DatabaseServer, addon: str, backup: str | None) -> Backup:
    """Replace ``addon``'s tables with those of ``backup`` (its newest with None), in one
    transaction: a restore that fails changes nothing."""
    chosen = path_of(settings, addon, backup)
    name = identifier(addon)
    how = server.invocation(
        "pg_restore", "--clean", "--if-exists", "--no-owner", "--role", name,
        "--single-transaction", "--exit-on-error", "--dbname", name,
    )  # fmt: skip
    with open(chosen.path, "rb") as source:
        done = how.run(DUMP_TIMEOUT, stdin=source, capture_output=True)
    if done.returncode != 0:
        raise ClusterError(
            f"The restore of {chosen.id} into {addon} failed ({reason(done.stderr)}); "
            "the database is as it was."
        )
    return chosen


def sweep(settings: Settings, now: float | None = None) -> list[str]:
    """Remove what is left of add-ons destroyed over :data:`FINAL_KEEP_DAYS` days ago."""
    now = time.time() if now is None else now
    removed = []
    root = settings.addons_dir
    for marker in root.glob(f"*/{_DESTROYED}") if root.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            if now - float(marker.read_text()) > FINAL_KEEP_DAYS * 86400:
                shutil.rmtree(marker.parent)
                removed.append(marker.parent.name)
    return removed
