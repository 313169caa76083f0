"""Each app's own system user and group, when the platform runs as root (isolation).

An app ``alpha`` runs as the user and group ``corral-alpha`` (the prefix is
``$CORRAL_USER_PREFIX``), with a uid and the same gid from ``$CORRAL_UIDS`` (40000-49999
by default). Its dynos, one-offs, release phase and builds run as that user, with a
private ``HOME``, ``TMPDIR`` and installer cache under ``CORRAL_HOME/users/<user>/``.

A user is an app's when its comment says ``corral app <app> home <tag>`` (the tag names
this platform home): that is how it is found, and a user or group of the name that is
someone else's is never taken over. Names are made from the app's name; one too long for
a user name (32 characters) keeps a prefix of it and a hash of the whole, so the mapping
is deterministic and two apps never share a user. A renamed app keeps its user (name,
uid and files: Linux will not rename a user whose processes run); only the comment
changes, and a new app taking the old name gets the hashed name.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from corral.config import Settings
from corral.errors import UserError
from corral.files import locked

__all__ = ["AppUser", "AppUsers", "missing_tools", "user_name"]

#: The longest user name ``useradd`` accepts on Linux.
MAX_NAME = 32
_VALID = re.compile(r"[a-z_][a-z0-9_-]*")
#: Where the account tools are when the caller's PATH lacks the sbin directories.
_TOOL_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
_TOOLS = ("useradd", "userdel", "usermod", "groupadd", "groupdel", "groupmod")


def user_name(prefix: str, app: str, *, hashed: bool = False) -> str:
    """The user (and group) name for ``app``: ``<prefix><app>``, shortened with a hash of
    the app name when that would be too long (or when ``hashed``)."""
    name = f"{prefix}{app}"
    if len(name) <= MAX_NAME and not hashed:
        return name
    digest = hashlib.sha256(app.encode()).hexdigest()[:8]
    keep = MAX_NAME - len(prefix) - len(digest) - 1
    return f"{prefix}{app[:keep].rstrip('-')}-{digest}"


def missing_tools() -> list[str]:
    """The account tools (``useradd``, ...) this host lacks."""
    return [tool for tool in _TOOLS if shutil.which(tool, path=_TOOL_PATH) is None]


def home_tag(home: Path) -> str:
    """A short, stable name for one platform home (users of two homes never mix)."""
    return hashlib.sha256(str(home).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class AppUser:
    """The system user an app runs as, and its private directories."""

    app: str
    name: str
    uid: int
    gid: int
    dir: Path

    @property
    def home(self) -> Path:
        return self.dir / "home"

    @property
    def tmp(self) -> Path:
        return self.dir / "tmp"

    @property
    def cache(self) -> Path:
        """The app's own installer cache: no other app's build reads or writes it."""
        return self.dir / "cache"

    def environ(self) -> dict[str, str]:
        """What a process of the app finds about who it is and where to write."""
        return {
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "USER": self.name,
            "LOGNAME": self.name,
        }

    def popen(self) -> dict[str, object]:
        """``subprocess.Popen`` arguments that run a child as this user, no extra groups."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


class AppUsers:
    """Create, find, rename and remove the apps' users of one platform home."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tag = home_tag(settings.home)

    def _comment(self, app: str) -> str:
        return f"corral app {app} home {self.tag}"

    def _dir(self, name: str) -> Path:
        return self.settings.users_dir / name

    def name(self, app: str) -> str:
        """The name a new user of ``app`` gets: the usual one, unless a renamed app's user
        of this home holds it already."""
        name = user_name(self.settings.user_prefix, app)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return name
        if entry.pw_gecos.startswith("corral app ") and entry.pw_gecos.endswith(self.tag):
            return user_name(self.settings.user_prefix, app, hashed=True)
        raise UserError(
            f"The system user {name} already exists and is not corral's; remove that user, "
            "or set $CORRAL_USER_PREFIX to give corral's users other names."
        )

    def lookup(self, app: str) -> AppUser | None:
        """The app's user, found by its comment (a renamed app keeps its user's name)."""
        comment = self._comment(app)
        for entry in pwd.getpwall():
            if entry.pw_gecos == comment:
                return AppUser(
                    app, entry.pw_name, entry.pw_uid, entry.pw_gid, self._dir(entry.pw_name)
                )
        return None

    def ensure(self, app: str) -> AppUser:
        """The app's user, created (with its private directories) if it does not exist."""
        with locked(self.settings.run_dir / "users.lock"):
            user = self.lookup(app)
            if user is None:
                user = self._create(app)
            self._make_dirs(user)
            return user

    def _create(self, app: str) -> AppUser:
        name = self.name(app)
        if not _VALID.fullmatch(name):
            raise UserError(
                f"$CORRAL_USER_PREFIX makes the user name {name!r}, which is not valid; "
                "use lowercase letters, digits, '-' and '_', starting with a letter."
            )
        with contextlib.suppress(KeyError):
            grp.getgrnam(name)
            raise UserError(
                f"The group {name} already exists and is not corral's; remove it, or set "
                "$CORRAL_USER_PREFIX to give corral's users other names."
            )
        uid = self._free_id()
        _account("groupadd", "--gid", str(uid), name)
        try:
            _account(
                "useradd", "--uid", str(uid), "--gid", str(uid), "--no-create-home",
                "--home-dir", str(self._dir(name) / "home"), "--shell", "/usr/sbin/nologin",
                "--comment", self._comment(app), name,
            )  # fmt: skip
        except UserError:
            _account("groupdel", name)
            raise
        return AppUser(app, name, uid, uid, self._dir(name))

    def _free_id(self) -> int:
        low, high = self.settings.uid_range
        taken = {entry.pw_uid for entry in pwd.getpwall()}
        taken |= {entry.gr_gid for entry in grp.getgrall()}
        for candidate in range(low, high + 1):
            if candidate not in taken:
                return candidate
        raise UserError(
            f"Every uid in $CORRAL_UIDS ({low}-{high}) is taken; widen the range "
            "or destroy unused apps."
        )

    def _make_dirs(self, user: AppUser) -> None:
        # The way to the app's own files (its directories here, its slugs) opens for others
        # to pass through, not to list: each app finds only what it knows the name of.
        settings = self.settings
        for path in (
            settings.home,
            settings.users_dir,
            settings.apps_dir,
            settings.apps_dir / user.app,
        ):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o711)
        for path in (user.dir, user.home, user.tmp, user.cache):
            path.mkdir(exist_ok=True)
            os.chown(path, user.uid, user.gid)
            path.chmod(0o700)

    def rename(self, old: str, new: str) -> None:
        """Give ``old``'s user (if any) to ``new``: the same user, uid and files (a user
        whose processes run cannot change its name), its comment naming ``new``."""
        with locked(self.settings.run_dir / "users.lock"):
            user = self.lookup(old)
            if user is not None:
                _account("usermod", "--comment", self._comment(new), user.name)

    def remove(self, app: str) -> bool:
        """Remove the app's user, group and directories; False if it had none."""
        with locked(self.settings.run_dir / "users.lock"):
            user = self.lookup(app)
            if user is not None:
                _kill_all(user.uid)  # a one-off left running: the app is gone
                _account("userdel", user.name)
                with contextlib.suppress(KeyError):
                    grp.getgrnam(user.name)
                    _account("groupdel", user.name)
                shutil.rmtree(user.dir, ignore_errors=True)
            return user is not None

    def apps(self) -> list[str]:
        """The apps that have a user of this home (to find those whose app is gone)."""
        marker = re.compile(rf"corral app ([a-z0-9-]+) home {self.tag}")
        return [
            match.group(1)
            for entry in pwd.getpwall()
            if (match := marker.fullmatch(entry.pw_gecos))
        ]


def _kill_all(uid: int) -> None:
    """SIGKILL every process running as ``uid`` (an app's own user: nothing else's)."""
    for process in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error):
            if uid in (process.info["uids"] or ()):
                process.kill()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        uid in (process.info["uids"] or ()) for process in psutil.process_iter(["uids"])
    ):
        time.sleep(0.05)


def _account(tool: str, *args: str) -> None:
    path = shutil.which(tool, path=_TOOL_PATH)
    if path is None:
        raise UserError(f"{tool} is not installed; install Debian's passwd package.")
    done = subprocess.run([path, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UserError(f"{tool} failed: {done.stderr.strip() or f'status {done.returncode}'}.")
