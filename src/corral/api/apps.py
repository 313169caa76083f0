"""Apps: create, list, show, delete, maintenance mode.

Deleting an app removes it from the store at once; the supervisor then stops its dynos
and forgets them, and only after that are the app's files (slugs, repository, logs) removed,
so no dyno runs from a deleted slug.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from corral.addons.provision import destroy_app_addons
from corral.api import context
from corral.api.errors import BadRequest
from corral.api.formation import dynos_json
from corral.api.objects import (
    app_json,
    domain_json,
    formation_json,
    json_body,
    json_int,
    release_json,
)
from corral.api.rename import rename_app
from corral.appusers import AppUsers
from corral.builder.source import remove_tree
from corral.deploy.disk import disk_use
from corral.store import App, Conflict

__all__ = ["apps_blueprint", "destroy_app"]

apps_blueprint = Blueprint("apps", __name__)


def _app_json(app: App) -> dict[str, Any]:
    return app_json(app, context.settings())


@apps_blueprint.get("/apps")
def list_apps() -> ResponseReturnValue:
    """Every app, by name."""
    return jsonify([_app_json(app) for app in context.store().list_apps()])


@apps_blueprint.post("/apps")
def create_app() -> ResponseReturnValue:
    """Create an app with the given name, or a random one."""
    name = json_body().get("name")
    if name is not None and not isinstance(name, str):
        raise BadRequest('"name" must be a string, such as {"name": "hello"}.')
    store = context.store()
    app = store.create_app(name)
    settings = context.settings()
    if settings.isolation:  # the app's own user, or no app: nothing half-created
        try:
            AppUsers(settings).ensure(app.name)
        except BaseException:
            store.delete_app(app.name)
            raise
    return jsonify(_app_json(app)), 201


@apps_blueprint.get("/apps/<app>")
def show_app(app: str) -> ResponseReturnValue:
    """The app with its current release, formation, dynos and domains."""
    store = context.store()
    record = store.get_app(app)
    release = store.current_release(app)
    body = _app_json(record)
    body["release"] = None if release is None else release_json(release)
    body["formation"] = [formation_json(entry, release) for entry in store.formation(app)]
    body["dynos"] = dynos_json(store.dynos(app))
    body["domains"] = [domain_json(domain) for domain in store.domains(app)]
    body["disk_use"] = disk_use(context.settings(), app)
    return jsonify(body)


@apps_blueprint.patch("/apps/<app>")
def update_app(app: str) -> ResponseReturnValue:
    """Rename the app: ``{"name": "new-name"}``; its dynos keep serving."""
    name = json_body().get("name")
    if not isinstance(name, str):
        raise BadRequest('Give the new name as "name", such as {"name": "hello"}.')
    return jsonify(_app_json(rename_app(app, name)))


@apps_blueprint.delete("/apps/<app>")
def delete_app(app: str) -> ResponseReturnValue:
    """Delete the app, wait for its dynos to stop, then remove its files."""
    destroy_app(app)
    return "", 204


def destroy_app(app: str) -> None:
    """Delete ``app`` from the store, wait (boundedly) for the manager to stop its dynos,
    then remove its repository, slugs and logs. Refused while a deploy is in progress."""
    store = context.store()
    store.get_app(app)
    pending = [release for release in store.releases(app) if release.status == "pending"]
    if pending:
        raise Conflict(
            f"{app} is being deployed ({pending[0].name} is in progress); "
            "delete it when the deploy has finished."
        )
    # its databases go first (a last backup of each kept), then the app
    destroy_app_addons(store, context.settings(), app)
    store.delete_app(app)
    deadline = time.monotonic() + current_app.config["CORRAL_DELETE_WAIT"]
    while store.dynos(app) and time.monotonic() < deadline:
        time.sleep(0.1)
    if store.dynos(app):
        current_app.logger.warning(
            "dynos of deleted app %s are still stopping; removing its files anyway", app
        )
    settings = context.settings()
    remove_tree(settings.apps_dir / app)
    remove_tree(settings.logs_dir(app))
    if settings.isolation:  # the supervisor does too, should this be cut short
        AppUsers(settings).remove(app)


@apps_blueprint.put("/apps/<app>/memory")
def set_memory_quota(app: str) -> ResponseReturnValue:
    """Set the memory quota per dyno in MB; null goes back to the platform's default."""
    body = json_body()
    if "megabytes" not in body:
        raise BadRequest('Give "megabytes" as a number or null, such as {"megabytes": 1024}.')
    megabytes = json_int(body["megabytes"])
    return jsonify(_app_json(context.store().set_memory_quota(app, megabytes)))


@apps_blueprint.put("/apps/<app>/maintenance")
def set_maintenance(app: str) -> ResponseReturnValue:
    """Turn maintenance mode on or off."""
    enabled = json_body().get("enabled")
    if not isinstance(enabled, bool):
        raise BadRequest('Give "enabled" as true or false, such as {"enabled": true}.')
    return jsonify(_app_json(context.store().set_maintenance(app, enabled)))
