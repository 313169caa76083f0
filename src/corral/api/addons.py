"""Add-ons: create, list, show, attach, detach, rotate, destroy; backups; ``pg:psql`` and
``redis:cli``.

The work is :mod:`corral.addons`'s; these views only read the request and answer. A
connection URL (it holds the password) is never in an answer but the app's config.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify, request, send_file
from flask.typing import ResponseReturnValue

from corral.addons import backups, postgres, provision, redis, schedule
from corral.addons.cluster import find_programs
from corral.addons.external import server_of, where
from corral.addons.naming import pg_environ, redis_address
from corral.api import context, oneoffs
from corral.api.errors import BadRequest
from corral.api.objects import command_field, json_body, release_json
from corral.errors import UserError
from corral.store import Addon, NotFound, Release

__all__ = ["addon_rows", "addons_blueprint"]

addons_blueprint = Blueprint("addons", __name__)


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _addon_json(addon: Addon) -> dict[str, Any]:
    attachments = context.store().attachments(addon=addon.name)
    return {
        "name": addon.name,
        "app": addon.app,
        "service": addon.service,
        "plan": addon.plan,
        "server": where(addon),
        "created_at": _time(addon.created_at),
        "attachments": [{"app": a.app, "as": a.var} for a in attachments],
        "backups": len(backups.listing(context.settings(), addon.name)),
        "schedule": _schedule_json(schedule.load(context.settings(), addon.name)),
    }


def _schedule_json(planned: schedule.Schedule | None) -> dict[str, Any] | None:
    return None if planned is None else {"at": planned.at, "keep": planned.keep}


def _backup_json(backup: backups.Backup) -> dict[str, Any]:
    return {"id": backup.id, "size": backup.size, "created_at": _time(backup.created_at)}


def _release(release: Release | None) -> dict[str, Any] | None:
    return None if release is None else release_json(release)


def _required_string(body: dict[str, Any], key: str, example: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f'Give "{key}" as a string, such as {{"{key}": "{example}"}}.')
    return value


def _optional_string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f'"{key}" must be a string, such as {{"{key}": "DATABASE_URL"}}.')
    return value


def addon_rows(app: str) -> list[dict[str, Any]]:
    """What the dashboard's app page shows of each add-on attached to ``app``: its name,
    service, plan and var, whether its server runs, its size and its last backup (a server
    that does not answer is ``unavailable``, never an error page)."""
    store, settings = context.store(), context.settings()
    units = {d.name: d.state for d in store.dynos("corral")}
    rows = []
    for addon in store.addons(app):
        server = "postgresql" if addon.service == "postgresql" else addon.name
        try:
            facts = _facts(addon)
        except UserError:
            facts = {}
        taken = backups.listing(settings, addon.name)
        rows.append({
            "name": addon.name, "service": addon.service, "plan": addon.plan,
            "as": [a.var for a in store.attachments(addon=addon.name, app=app)],
            "state": units.get(server, "stopped") if facts else "unavailable",
            "size": facts.get("size"),
            "last_backup": _time(taken[-1].created_at) if taken else None,
        })  # fmt: skip
    return rows


def _facts(addon: Addon) -> dict[str, Any]:
    settings = context.settings()
    if addon.service == "redis":
        return redis.redis_facts(settings, addon.name)
    return postgres.database_facts(server_of(settings, addon), addon.name)


@addons_blueprint.get("/apps/<app>/addons")
def list_addons(app: str) -> ResponseReturnValue:
    """The add-ons attached to the app."""
    return jsonify([_addon_json(addon) for addon in context.store().addons(app)])


@addons_blueprint.post("/apps/<app>/addons")
def create_addon(app: str) -> ResponseReturnValue:
    """Create an add-on of the app and attach it (``DATABASE_URL``, or ``as``)."""
    body = json_body()
    service = _required_string(body, "service", "postgresql")
    wanted = provision.Wanted(
        service, *(_optional_string(body, key) for key in ("as", "plan", "server"))
    )
    created = provision.create(context.store(), context.settings(), app, wanted)
    answer = {**_addon_json(created.addon), "as": created.var}
    return jsonify({"addon": answer, "release": _release(created.release)}), 201


@addons_blueprint.get("/addons/<name>")
def show_addon(name: str) -> ResponseReturnValue:
    """The add-on, its attachments, and its server's version, size and connections."""
    addon = context.store().get_addon(name)
    return jsonify({**_addon_json(addon), **_facts(addon)})


def _database(name: str) -> Addon:
    """Add-on ``name``, which must be a database (backups are of databases)."""
    addon = context.store().get_addon(name)
    if addon.service != "postgresql":
        raise BadRequest(f"{name} is a {addon.service} add-on; backups are of postgresql ones.")
    return addon


@addons_blueprint.delete("/addons/<name>")
def destroy_addon(name: str) -> ResponseReturnValue:
    """Destroy the add-on (``confirm`` names its app), after a last backup."""
    final = provision.destroy(
        context.store(), context.settings(), name, request.args.get("confirm")
    )
    return jsonify({"name": name, "final_backup": final, "kept_days": backups.FINAL_KEEP_DAYS})


@addons_blueprint.post("/addons/<name>/attachments")
def attach_addon(name: str) -> ResponseReturnValue:
    """Attach the add-on to another app too."""
    body = json_body()
    app = _required_string(body, "app", "reports")
    attachment, release = provision.attach(context.store(), name, app, _optional_string(body, "as"))
    return jsonify({"app": attachment.app, "as": attachment.var, "release": _release(release)})


@addons_blueprint.delete("/addons/<name>/attachments/<app>")
def detach_addon(name: str, app: str) -> ResponseReturnValue:
    """Detach the add-on from an app it is attached to (not its own)."""
    release = provision.detach(context.store(), name, app)
    return jsonify({"release": _release(release)})


@addons_blueprint.post("/addons/<name>/credentials")
def rotate_credentials(name: str) -> ResponseReturnValue:
    """A new login for the database; every app attached gets a new release with it, and
    once they have rolled the old login is revoked (``revoked``; else ``kept_because``)."""
    rotated = provision.rotate(context.store(), context.settings(), name)
    return jsonify(
        {
            "releases": [_release(release) for release in rotated.releases],
            "revoked": not rotated.kept_because,
            "kept_because": rotated.kept_because,
        }
    )


@addons_blueprint.get("/addons/<name>/backups")
def list_backups(name: str) -> ResponseReturnValue:
    """The add-on's backups, oldest first."""
    _database(name)
    return jsonify([_backup_json(b) for b in backups.listing(context.settings(), name)])


@addons_blueprint.post("/addons/<name>/backups")
def capture_backup(name: str) -> ResponseReturnValue:
    """Take a backup now (``pg_dump``, custom format)."""
    addon, settings = _database(name), context.settings()
    backup = backups.capture(settings, server_of(settings, addon), name)
    return jsonify(_backup_json(backup)), 201


@addons_blueprint.get("/addons/<name>/backups/<backup>")
def download_backup(name: str, backup: str) -> ResponseReturnValue:
    """The backup's file (``pg_restore`` reads it)."""
    _database(name)
    chosen = backups.path_of(context.settings(), name, backup)
    return send_file(
        chosen.path, "application/octet-stream", as_attachment=True,
        download_name=f"{name}-{chosen.id}.dump",
    )  # fmt: skip


@addons_blueprint.put("/addons/<name>/schedule")
def schedule_backups(name: str) -> ResponseReturnValue:
    """Back the database up every day at ``at`` (HH:MM, UTC), keeping the last ``keep``."""
    _database(name)
    body = json_body()
    at, keep = body.get("at"), body.get("keep", 7)
    if not isinstance(at, str) or isinstance(keep, bool) or not isinstance(keep, int):
        raise BadRequest('Give "at" as "HH:MM" (UTC) and "keep" as a number: {"at": "02:00"}.')
    settings = context.settings()
    before = schedule.load(settings, name)
    planned = schedule.Schedule(
        at, keep, before.taken if before else [], before.last if before else None
    )
    schedule.save(settings, name, planned)
    return jsonify(_schedule_json(planned))


@addons_blueprint.delete("/addons/<name>/schedule")
def unschedule_backups(name: str) -> ResponseReturnValue:
    """Stop the scheduled backups (those taken stay)."""
    _database(name)
    if not schedule.remove(context.settings(), name):
        raise NotFound(f"{name} has no backup schedule; set one with `corral pg:backups:schedule`.")
    return "", 204


@addons_blueprint.post("/addons/<name>/restore")
def restore_backup(name: str) -> ResponseReturnValue:
    """Replace the database's tables with a backup's (``backup``; the newest without)."""
    addon, settings = _database(name), context.settings()
    backup = _optional_string(json_body(), "backup")
    restored = backups.restore(settings, server_of(settings, addon), name, backup)
    return jsonify(_backup_json(restored))


# websocket=True: werkzeug matches upgrade requests only to rules that say they take them.
@addons_blueprint.get("/apps/<app>/psql", websocket=True)
def attach_psql(app: str) -> ResponseReturnValue:
    """``pg:psql``: psql on the app's database as a one-off attached over a WebSocket;
    the start header's command is ``psql`` and its arguments, ``as`` the attachment (else
    ``DATABASE_URL``)."""
    return _console(app, "psql", "DATABASE_URL")


@addons_blueprint.get("/apps/<app>/redis-cli", websocket=True)
def attach_redis_cli(app: str) -> ResponseReturnValue:
    """``redis:cli``: redis-cli on the app's Redis, as ``pg:psql`` is psql (``REDIS_URL``)."""
    return _console(app, "redis-cli", "REDIS_URL")


def _console(app: str, program: str, default_var: str) -> ResponseReturnValue:
    store = context.store()
    start = oneoffs.start_parameters(request)
    command = command_field(start.get("command"))
    var = start.get("as") or default_var
    if command[0] != program:
        raise BadRequest(f'This route runs {program} only: {{"command": ["{program}", ...]}}.')
    url = store.config(app).get(var) if isinstance(var, str) else None
    if url is None or var not in {a.var for a in store.attachments(app=app)}:
        raise NotFound(f"{app} has no add-on attached as {var}; `corral addons` lists them.")
    # the password reaches the program in its environment, never its command line
    if program == "psql":
        path = find_programs(context.settings()) / "psql"
        spec = oneoffs.one_off(store, app, [str(path), *command[1:]], start)
        env = pg_environ(url)
    else:
        host, port, password = redis_address(url)
        argv = [str(redis.PROGRAMS / program), "-h", host, "-p", str(port), *command[1:]]
        spec = oneoffs.one_off(store, app, argv, start)
        env = {"REDISCLI_AUTH": password}
    spec = dataclasses.replace(spec, env={**spec.env, **env})
    return oneoffs.serve_attached(store, app, spec, start)
