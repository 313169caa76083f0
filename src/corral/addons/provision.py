"""Creating, attaching, detaching and destroying add-ons: the database, the store's record
and the apps' config vars, kept in step (nothing half-created, nothing left behind).

Setting or unsetting the config var is a config change like ``config:set``: a deployed
app gets a new release and its dynos roll with zero downtime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from corral.addons import backups, postgres, redis, schedule
from corral.addons.cluster import Cluster, find_programs
from corral.addons.external import External, server_of
from corral.addons.naming import SERVICES, attachment_var, new_addon_name, validate_var
from corral.config import Settings
from corral.errors import UserError
from corral.files import locked
from corral.store import Addon, Attachment, Conflict, Release, Store
from corral.store.addons import new_addon

__all__ = [
    "Created",
    "Rotated",
    "Wanted",
    "attach",
    "create",
    "destroy",
    "destroy_app_addons",
    "detach",
    "rotate",
]

#: Seconds a rotation waits for the apps attached to roll before it revokes the old login.
ROLL_WAIT = 90.0
#: Each service's plans, the default first: a database on the platform's cluster (no size
#: limit of its own), a Redis with that many MB of ``maxmemory``.
PLANS = {"postgresql": ("standard",), "redis": tuple(redis.PLANS)}


@dataclass(frozen=True)
class Created:
    """A new add-on, the config var it is attached as, and the app's new release (if any)."""

    addon: Addon
    var: str
    release: Release | None


@dataclass(frozen=True)
class Wanted:
    """What ``addons:create`` asks for: the service, and optionally the config var, the
    plan, and (for a database) the admin URL of a server of its own."""

    service: str
    var: str | None = None
    plan: str | None = None
    server: str | None = None


def create(store: Store, settings: Settings, app: str, wanted: Wanted) -> Created:
    """Create a ``wanted.service`` add-on for ``app``, attached as ``wanted.var`` (else
    the usual name, or one of its own when the app has that already). What is wrong with
    the request is said before anything is made."""
    service, var = wanted.service, wanted.var
    if service not in SERVICES:
        raise UserError(
            f"There is no add-on service {service!r}; corral provides "
            f"{', '.join(sorted(SERVICES))}, such as `corral addons:create postgresql`."
        )
    plan = wanted.plan or PLANS[service][0]
    if plan not in PLANS[service]:
        raise UserError(
            f"{service} has no plan {plan!r}; choose one of {', '.join(PLANS[service])}."
        )
    config = store.config(app)  # NotFound for an unknown app, before anything is made
    if var is not None and validate_var(var) in config:
        raise Conflict(f"{app} already has a config var {var}; choose another name with --as.")
    server = _server(settings, wanted)
    with locked(settings.run_dir / "addons.lock"):
        name = new_addon_name(service, {a.name for a in store.addons()})
        var = var or attachment_var(service, name, config)
        url = _make(settings, service, name, plan, server)
        addon = new_addon(name, app, service, plan, url, server)
        try:
            store.create_addon(addon, var)
            try:
                release = store.set_config(app, {var: url})
            except BaseException:
                store.delete_addon(name)
                raise
        except BaseException:
            _unmake(settings, addon)
            raise
    return Created(addon, var, release)


def _server(settings: Settings, wanted: Wanted) -> str | None:
    """The admin URL of the server a new database goes to (None: the platform's cluster),
    checked; PostgreSQL's programs found, or the package to install said."""
    if wanted.service != "postgresql":
        if wanted.server is not None:
            raise UserError(f"--server is for postgresql add-ons, not {wanted.service}.")
        return None
    server = wanted.server or settings.postgresql_server
    if server is None:
        find_programs(settings)
    else:
        External(settings, server).check()
    return server


def _make(settings: Settings, service: str, name: str, plan: str, server: str | None) -> str:
    if service == "redis":
        return redis.create_server(settings, name, plan)
    if server is not None:
        return postgres.create_database(External(settings, server), name)
    cluster = Cluster(settings)
    cluster.ensure()
    return postgres.create_database(cluster, name)


def _unmake(settings: Settings, addon: Addon) -> None:
    if addon.service == "redis":
        redis.destroy_server(settings, addon.name)
    else:
        postgres.drop_database(server_of(settings, addon), addon.name, missing_ok=True)


def attach(store: Store, name: str, app: str, var: str | None) -> tuple[Attachment, Release | None]:
    """Attach add-on ``name`` to ``app`` as ``var`` (else the usual name, or one of its own)."""
    addon = store.get_addon(name)
    config = store.config(app)
    if var is not None and validate_var(var) in config:
        raise Conflict(f"{app} already has a config var {var}; choose another name with --as.")
    var = var or attachment_var(addon.service, name, config)
    attachment = store.attach_addon(name, app, var)
    try:
        release = store.set_config(app, {var: addon.url})
    except BaseException:
        store.detach_addon(name, app)
        raise
    return attachment, release


def detach(store: Store, name: str, app: str) -> Release | None:
    """Detach add-on ``name`` from ``app`` (not its own app: destroy it instead)."""
    addon = store.get_addon(name)
    if addon.app == app:
        raise Conflict(
            f"{name} belongs to {app}; destroy it with `corral addons:destroy {name} "
            f"--confirm {app}`, or detach it from the other apps it is attached to."
        )
    attachments = store.detach_addon(name, app)
    if not attachments:
        raise UserError(f"{name} is not attached to {app}; `corral addons -a {app}` lists them.")
    return store.set_config(app, {}, [a.var for a in attachments])


@dataclass(frozen=True)
class Rotated:
    """What a rotation did: each attached app's new release, and what kept the old
    password working (nothing: it was revoked)."""

    releases: list[Release | None]
    kept_because: list[str]


def rotate(store: Store, settings: Settings, name: str, wait: float = ROLL_WAIT) -> Rotated:
    """New credentials for add-on ``name``: a new login, each app attached given a release
    with it; once every one has rolled (within ``wait`` seconds), the old login is revoked
    and its sessions ended. Where one has not, the old login is kept and that is said."""
    addon = store.get_addon(name)
    if addon.service != "postgresql":
        raise UserError(f"{name} is no database; pg:credentials:rotate is for postgresql.")
    old_user = unquote(urlsplit(addon.url).username or "")
    cluster = server_of(settings, addon)
    with locked(settings.run_dir / "addons.lock"):
        url = postgres.new_login(cluster, name, old_user)
        store.update_addon_url(name, url)
    releases: list[Release | None] = []
    kept: list[str] = []
    for attachment in store.attachments(addon=name):
        try:
            releases.append(store.set_config(attachment.app, {attachment.var: url}))
        except Conflict as refused:
            kept.append(f"{attachment.app}: {refused}")
    kept += _not_rolled(store, releases, wait)
    if not kept:
        postgres.revoke_login(cluster, name, old_user)
    return Rotated(releases, kept)


def _not_rolled(store: Store, releases: list[Release | None], wait: float) -> list[str]:
    """Why each of ``releases`` is not live (still pending after ``wait``, or failed)."""
    deadline = time.monotonic() + wait
    pending = [r for r in releases if r is not None and r.status == "pending"]
    why = []
    while pending:
        now = [store.release(r.app, r.version) for r in pending]
        why += [
            f"{r.app}: {r.name} failed ({r.failure_reason})" for r in now if r.status == "failed"
        ]
        pending = [r for r in now if r.status == "pending"]
        if pending and time.monotonic() > deadline:
            why += [f"{r.app}: {r.name} is still rolling out" for r in pending]
            break
        if pending:
            time.sleep(0.2)
    return why


def destroy(store: Store, settings: Settings, name: str, confirm: str | None) -> str | None:
    """Destroy add-on ``name`` (``confirm`` must name its app): a last backup of a
    database, the vars unset from every app attached, the database and role dropped (a
    Redis stopped and its files removed). The backup's id (None for a Redis)."""
    addon = store.get_addon(name)
    if confirm != addon.app:
        raise UserError(
            f"Destroying {name} deletes its data for good; confirm with "
            f"`corral addons:destroy {name} --confirm {addon.app}`."
        )
    return _remove(store, settings, addon, unset=True)


def destroy_app_addons(store: Store, settings: Settings, app: str) -> None:
    """Destroy the add-ons ``app`` owns and detach those it is attached to (``apps:destroy``):
    its own config is left alone, the app goes with it."""
    for addon in store.addons(app):
        if addon.app == app:
            _remove(store, settings, addon, unset=False)
        else:
            store.detach_addon(addon.name, app)


def _remove(store: Store, settings: Settings, addon: Addon, *, unset: bool) -> str | None:
    with locked(settings.run_dir / "addons.lock"):
        final = None
        schedule.remove(settings, addon.name)  # no backups of what is gone
        if addon.service == "postgresql":
            final = backups.capture(settings, server_of(settings, addon), addon.name, final=True).id
        for attachment in store.attachments(addon=addon.name):
            if unset or attachment.app != addon.app:
                store.set_config(attachment.app, {}, [attachment.var])
        store.delete_addon(addon.name)
        if addon.service == "postgresql":
            postgres.drop_database(server_of(settings, addon), addon.name)
        else:
            redis.destroy_server(settings, addon.name)
    return final
