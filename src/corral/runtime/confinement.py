"""What the host lets the platform do to keep apps apart, decided once at start: each
app a user of its own (as root), kernel limits per dyno (cgroups), and a home closed to
everyone else. Each check returns what it found and the line ``corral server`` prints."""

from __future__ import annotations

import contextlib
import os
import pwd
from pathlib import Path

from corral.appusers import missing_tools, user_name
from corral.config import Settings
from corral.errors import UserError
from corral.runtime.cgroups import Hierarchy, base_for_home, detect

__all__ = ["isolation", "keep_private", "kernel_limits"]


def keep_private(home: Path, *, passable: bool) -> None:
    """Close the home to other users (a home made by an older corral may be open); with
    ``passable`` (isolated apps) they may pass through it to what is theirs, not list it."""
    if home.stat().st_uid == os.geteuid():
        home.chmod(0o711 if passable else 0o700)
    for name in ("corral.db", "corral.db-wal", "corral.db-shm", "admin-token", "dashboard-secret"):
        with contextlib.suppress(FileNotFoundError):
            (home / name).chmod(0o600)


def isolation(settings: Settings, wanted: bool) -> tuple[bool, str]:
    """Whether each app runs as a user of its own, and the line that says so at start.

    As root it is on unless turned off, and refused (with what to do) where it cannot be:
    apps never run as root by accident."""
    if os.geteuid() != 0:
        user = pwd.getpwuid(os.geteuid()).pw_name
        return False, (
            f"apps are not isolated from each other: they all run as {user}, as the platform "
            "does; run corral server as root to give each app a user of its own "
            "(docs/operations.md, Isolation)"
        )
    if not wanted:
        return False, (
            "apps are not isolated from each other (--no-isolation): they all run as root, "
            "as the platform does; for development only"
        )
    missing = missing_tools()
    if missing:
        raise UserError(
            f"Apps cannot be isolated: {', '.join(missing)} not found; install Debian's "
            "passwd package, or pass --no-isolation (development only)."
        )
    for parent in settings.home.parents:
        mode = parent.stat().st_mode if parent.exists() else 0o755
        if not mode & 0o001:
            raise UserError(
                f"Apps cannot be isolated: {parent} is closed to other users (mode "
                f"{mode & 0o777:04o}), and each app's user must pass through it to "
                f"{settings.home}; choose a home outside it (e.g. --home /var/lib/corral) "
                "or pass --no-isolation (development only)."
            )
    low, high = settings.uid_range
    name = user_name(settings.user_prefix, "<app>")
    return True, f"apps isolated: each runs as a user of its own ({name}, uids {low}-{high})"


def kernel_limits(settings: Settings) -> tuple[Hierarchy | None, str]:
    """The host's cgroups if dynos can run in them, and a note saying which or why not."""
    if os.geteuid() != 0:
        return None, "off: corral server is not running as root"
    hierarchy, note = detect()
    if hierarchy is None:
        return None, f"off: {note}"
    try:
        hierarchy.prepare(base_for_home(settings.home))
    except OSError as error:
        return None, f"off: cannot create cgroups ({error.strerror}: {error.filename})"
    return hierarchy, f"on ({note}: memory, pids and CPU per dyno)"
