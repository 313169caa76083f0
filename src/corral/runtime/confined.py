"""An app's process started outside the dyno shim (an attached one-off, the release
phase), confined as a dyno is: as the app's own user, in a cgroup of its own.

The child is a tiny launcher run by the app's own Python, already as the app's user; it
waits until the platform has put it in its cgroup (the platform writes a byte on a pipe),
then, for a terminal session, makes the pty its controlling terminal, and execs the
command. So not one line of the app's code runs outside its limits, and nothing is done
in a ``preexec_fn`` (unsafe in the API's threaded workers).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.appusers import AppUser, AppUsers
from corral.config import Settings
from corral.runtime.cgroups import Group, Limits, base_for_home, detect

__all__ = ["Confinement", "make_group", "release", "start"]

# argv: the pipe to wait on, the pipe to close once the pty is the controlling terminal
# ("-": no terminal), then the command.
_LAUNCHER = (
    "import fcntl, os, sys, termios\n"
    "os.read(int(sys.argv[1]), 1)\n"
    "os.close(int(sys.argv[1]))\n"
    "tty = sys.argv[2] != '-'\n"
    "if tty:\n"
    "    os.setsid()\n"
    "    fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "    os.close(int(sys.argv[2]))\n"
    "try:\n"
    "    os.execvp(sys.argv[3], sys.argv[3:])\n"
    "except OSError as e:\n"
    "    sys.stderr.write(sys.argv[3] + ': ' + e.strerror + ('\\r\\n' if tty else '\\n'))\n"
    "    sys.exit(127)\n"
)


@dataclass(frozen=True)
class Confinement:
    """Who an app's process runs as and where its cgroup goes (its app's group)."""

    user: AppUser | None = None
    parent: str | None = None
    limits: Limits | None = field(default=None)

    @classmethod
    def for_app(cls, settings: Settings, app: str, quota_mb: int | None) -> Confinement:
        """How ``app``'s processes run on this platform (``quota_mb``: the app's own quota)."""
        user = AppUsers(settings).ensure(app) if settings.isolation else None
        if not settings.kernel_limits:
            return cls(user)
        memory = (quota_mb or settings.memory_quota_mb) << 20
        return cls(user, f"{base_for_home(settings.home)}/{app}", Limits(memory=memory))

    def environ(self) -> dict[str, str]:
        """What the process finds about who it is (its user's HOME, TMPDIR, ...)."""
        return self.user.environ() if self.user else {}

    def popen(self) -> dict[str, Any]:
        """``subprocess.Popen`` arguments that run the child as the app's user."""
        return self.user.popen() if self.user else {}


def make_group(confinement: Confinement, name: str) -> Group | None:
    """A cgroup of its own for process ``name`` of the app, with the app's limits; None
    where there are no kernel limits (or the group cannot be made: it runs without)."""
    if confinement.parent is None or confinement.limits is None:
        return None
    hierarchy, _ = detect()
    if hierarchy is None:
        return None
    try:
        hierarchy.prepare(confinement.parent)
        path = f"{confinement.parent}/{name}.{secrets.token_hex(4)}"
        return hierarchy.create(path, confinement.limits)
    except OSError:  # the process runs, without kernel limits, as on a host without them
        return None


def start(
    argv: list[str],
    *,
    name: str,
    python: Path,
    confinement: Confinement,
    tty_ready: int | None = None,
    **popen: Any,
) -> tuple[subprocess.Popen, Group | None]:
    """Start ``argv`` as process ``name`` (``run.1234``) of the app, confined; ``python``
    (the app's own) runs the launcher. With ``tty_ready`` (the write end of a pipe) the
    launcher takes its stdin's terminal as its controlling terminal, then closes it."""
    group = make_group(confinement, name)
    wait, go = os.pipe()
    ready = "-" if tty_ready is None else str(tty_ready)
    launcher = [str(python), "-I", "-S", "-c", _LAUNCHER, str(wait), ready, *argv]
    keep = (wait,) if tty_ready is None else (wait, tty_ready)
    try:
        process = subprocess.Popen(
            launcher, pass_fds=keep, umask=0o022, **confinement.popen(), **popen
        )
    except BaseException:
        os.close(go)
        release(group)
        raise
    finally:
        os.close(wait)
    try:
        if group is not None:
            with contextlib.suppress(OSError):
                group.add(process.pid)
    finally:
        os.write(go, b"g")
        os.close(go)
    return process, group


def release(group: Group | None) -> None:
    """Once the process is gone: end what it left in its group, and remove the group."""
    if group is not None:
        group.kill()
        group.remove()
