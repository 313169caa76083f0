"""What one dyno of a release runs: its command, slug, environment, port, kernel limits
and, when apps are isolated, the app's own user."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from corral.appusers import AppUser, AppUsers
from corral.builder.slug import load_slug
from corral.config import Settings
from corral.errors import UserError
from corral.runtime import plan
from corral.runtime.cgroups import Limits, base_for_home
from corral.runtime.dyno import DynoSpec
from corral.runtime.environ import base_environ, process_environ
from corral.runtime.firewall import Firewall, FirewallError
from corral.runtime.netrules import PLATFORM
from corral.runtime.services import free_port
from corral.store.models import App, Release

__all__ = ["DynoSpecs", "release_dyno_spec", "user_runtime_dir"]

#: Seconds a dyno port handed out is kept in the firewall's rules without a unit holding
#: it (half of it: a dyno still booting has no row yet).
BOOT_ALLOWANCE = 120.0


class DynoSpecs:
    """What the supervisor starts each app's dynos with: their memory quota, a port for
    web dynos, kernel limits where the host has them, and the app's own user when apps
    are isolated (created on first use, so apps made before isolation get one too)."""

    def __init__(
        self,
        settings: Settings,
        default_quota: int,
        *,
        kernel_limits: bool,
        log: Callable[[str, str], None],
        firewall: Firewall | None = None,
    ) -> None:
        self.settings = settings
        #: Refuses one app's user the others' dyno ports (and the platform's own).
        self.firewall = firewall
        #: port -> (uid allowed to connect, when it was handed out): every dyno port.
        self._owners: dict[int, tuple[int, float]] = {}
        self._synced: dict[int, int] | None = None
        self.default_quota = default_quota
        self.kernel_limits = kernel_limits
        self.users = AppUsers(settings) if settings.isolation else None
        self._log = log
        self._known: dict[str, AppUser] = {}
        self._refused: dict[str, str] = {}

    def quota(self, app: App | None) -> int:
        """Bytes of memory a dyno of ``app`` may use: its own quota, else the platform's."""
        if app is not None and app.memory_quota_mb:
            return app.memory_quota_mb << 20
        return self.default_quota

    def ready(self, app: str) -> bool:
        """Whether ``app``'s dynos can start: its user exists (or apps are not isolated).
        A user that cannot be made is said once in the app's log; the app does not run."""
        if self.users is None or app in self._known:
            return True
        try:
            self._known[app] = self.users.ensure(app)
        except UserError as error:
            if self._refused.get(app) != str(error):
                self._refused[app] = str(error)
                self._log(app, f"Cannot start the app's dynos: {error}")
            return False
        self._refused.pop(app, None)
        return True

    def spec(self, app: App | None, name: str, release: Release) -> DynoSpec:
        """Dyno ``name`` of ``release`` (call :meth:`ready` first when apps are isolated)."""
        port = free_port() if plan.process_type(name) == "web" else None
        if not self.ready(release.app):
            raise UserError(self._refused[release.app])
        user = self._known.get(release.app)
        if port is not None and user is not None:
            self._owners[port] = (user.uid, time.monotonic())
            self.guard()  # before the dyno can listen on it
        quota = self.quota(app)
        limited = self.kernel_limits
        return release_dyno_spec(
            self.settings, release, name, port, quota, kernel_limits=limited, user=user
        )

    def guard(self, live: Iterable[int] | None = None, platform: Iterable[int] = ()) -> None:
        """Put the firewall's rules in line with the dyno ports handed out; with ``live``
        (the ports units hold now) forget the others, once past any boot they were for."""
        if self.firewall is None:
            return
        if live is not None:
            keep, stale = set(live), time.monotonic() - 2 * BOOT_ALLOWANCE
            self._owners = {
                port: owner
                for port, owner in self._owners.items()
                if port in keep or owner[1] > stale
            }
        owners = {port: uid for port, (uid, _) in self._owners.items()}
        owners.update((port, PLATFORM) for port in platform)
        if owners == self._synced:
            return
        try:
            self.firewall.sync(owners)
            self._synced = owners
        except FirewallError as error:
            self._log("corral", f"The firewall rules could not be updated: {error}")

    def unguard(self) -> None:
        """Remove the firewall's rules (a clean stop: no dyno is left to guard)."""
        if self.firewall is not None:
            try:
                self.firewall.clear()
            except FirewallError as error:
                self._log("corral", f"The firewall rules could not be removed: {error}")
            self._synced = None

    def forget(self, app: str, *, destroyed: bool) -> None:
        """Drop what is known of ``app``'s user (renamed); ``destroyed``: remove the user."""
        self._known.pop(app, None)
        if destroyed and self.users is not None:
            try:
                self.users.remove(app)
            except UserError as error:
                self._log(app, f"Could not remove the app's user: {error}")

    def sweep(self, apps: Iterable[str]) -> None:
        """Remove the users of apps destroyed while the platform was not running."""
        if self.users is None:
            return
        kept = set(apps)
        for app in self.users.apps():
            if app not in kept:
                self.forget(app, destroyed=True)


def release_dyno_spec(
    settings: Settings,
    release: Release,
    name: str,
    port: int | None,
    quota: int,
    *,
    kernel_limits: bool,
    user: AppUser | None = None,
) -> DynoSpec:
    """Dyno ``name`` (``web.1``) of ``release``, with ``quota`` bytes of memory; with
    ``kernel_limits`` it runs in a cgroup of its own under its app's, and with ``user``
    as the app's own user, its ``HOME``, ``TMPDIR`` and runtime directory that user's."""
    slug = load_slug(release.slug_path)
    runtime_dir = settings.run_dir / "dynos" / release.app / name
    if user is not None:
        runtime_dir = user_runtime_dir(user, name)
    env = process_environ(
        slug,
        base={
            **base_environ(),
            **(user.environ() if user else {}),
            "WEB_CONCURRENCY": str(plan.web_concurrency(quota, os.cpu_count() or 1)),
        },
        config=release.config,
        port=port,
        dyno=name,
        runtime_dir=runtime_dir,
    )
    command = release.process_types[plan.process_type(name)]
    return DynoSpec(
        release.app,
        name,
        command,
        release.slug_path,
        env,
        port,
        cgroup=f"{base_for_home(settings.home)}/{release.app}" if kernel_limits else None,
        limits=Limits(memory=quota) if kernel_limits else None,
        user=(user.uid, user.gid) if user else None,
    )


def user_runtime_dir(user: AppUser, name: str) -> Path:
    """A private ``XDG_RUNTIME_DIR`` for process ``name`` of ``user``'s app, owned by it."""
    path = user.dir / "run" / name
    for each in (path.parent, path):
        each.mkdir(mode=0o700, exist_ok=True)
        os.chown(each, user.uid, user.gid)
    return path
