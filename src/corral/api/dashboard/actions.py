"""What the dashboard's forms do: create or destroy an app, scale, restart, roll back,
change config vars and domains, switch maintenance mode.

Every action is a POST carrying the session's CSRF token (checked before the view runs),
and answers with a redirect back to the page (303), with a message saying what happened
or, when the action was refused, why.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.apps import destroy_app
from corral.api.dashboard.blueprint import dashboard_blueprint
from corral.api.objects import release_number, whole_number
from corral.errors import UserError
from corral.store import Release

__all__: list[str] = []


def _back(app: str, section: str) -> ResponseReturnValue:
    return redirect(url_for("dashboard.app_page", app=app, _anchor=section), code=303)


def _act(app: str, section: str, action: Callable[[], str]) -> ResponseReturnValue:
    """Run ``action``; flash the sentence it returns, or the error that refused it."""
    try:
        flash(action(), "success")
    except UserError as exc:
        flash(exc.message, "danger")
    return _back(app, section)


def _field(name: str) -> str:
    return request.form.get(name, "").strip()


def _deploying(release: Release | None, app: str) -> str:
    if release is None:
        return "it applies from the first deploy."
    if release.status != "pending":
        return "nothing changed."
    return f"{app} is rolling out {release.name}; the current release serves until it starts."


@dashboard_blueprint.post("/apps")
def create_app() -> ResponseReturnValue:
    """Create an app (a random name when the field is empty) and open its page."""
    name = _field("name") or None
    try:
        app = context.store().create_app(name)
    except UserError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("dashboard.index", _anchor="create"), code=303)
    flash(f"Created {app.name}. Push your code to deploy it.", "success")
    return redirect(url_for("dashboard.app_page", app=app.name), code=303)


@dashboard_blueprint.post("/apps/<app>/scale")
def scale(app: str) -> ResponseReturnValue:
    """Set the number of dynos of one process type."""
    process_type = _field("type")
    raw = _field("quantity")

    def action() -> str:
        quantity = whole_number(raw)
        if quantity is None:
            raise UserError(
                f"Give the number of {process_type or 'web'} dynos as a whole number, not {raw!r}."
            )
        context.store().scale(app, {process_type: quantity})
        return f"Scaled {process_type} to {quantity}."

    return _act(app, "dynos", action)


@dashboard_blueprint.post("/apps/<app>/restart")
def restart(app: str) -> ResponseReturnValue:
    """Restart every dyno, or those of one process type, or one dyno."""
    target = _field("target") or None

    def action() -> str:
        context.store().request_dynos(app, "restart", target)
        return f"Restarting {target or 'all dynos'}."

    return _act(app, "dynos", action)


@dashboard_blueprint.post("/apps/<app>/rollback")
def rollback(app: str) -> ResponseReturnValue:
    """A new release restoring an older one's slug and config."""
    raw = _field("version")

    def action() -> str:
        version = release_number(raw)
        if version is None:
            raise UserError(f"Pick the release to roll back to, such as v3, not {raw!r}.")
        release = context.store().rollback(app, version, keep=context.settings().keep_releases)
        return (
            f"Rolling back to v{version}: {release.name} is rolling out; the current release "
            "serves until it starts."
        )

    return _act(app, "releases", action)


@dashboard_blueprint.post("/apps/<app>/config")
def set_config(app: str) -> ResponseReturnValue:
    """Add or change one config var (a new release once the app is deployed)."""
    key = _field("key")
    value = request.form.get("value", "")

    def action() -> str:
        if not key:
            raise UserError("Give the config var a name, such as DATABASE_URL.")
        release = context.store().set_config(app, {key: value})
        return f"Set {key}; {_deploying(release, app)}"

    return _act(app, "config", action)


@dashboard_blueprint.post("/apps/<app>/config/unset")
def unset_config(app: str) -> ResponseReturnValue:
    """Remove one config var."""
    key = _field("key")

    def action() -> str:
        release = context.store().set_config(app, {}, [key])
        return f"Removed {key}; {_deploying(release, app)}"

    return _act(app, "config", action)


@dashboard_blueprint.post("/apps/<app>/domains")
def add_domain(app: str) -> ResponseReturnValue:
    """Route a hostname to the app."""
    hostname = _field("hostname")

    def action() -> str:
        domain = context.store().add_domain(
            app, hostname, platform_domain=context.settings().domain
        )
        return f"Added {domain.hostname}; point its DNS at this server."

    return _act(app, "domains", action)


@dashboard_blueprint.post("/apps/<app>/domains/remove")
def remove_domain(app: str) -> ResponseReturnValue:
    """Stop routing a hostname to the app."""
    hostname = _field("hostname")

    def action() -> str:
        context.store().remove_domain(app, hostname)
        return f"Removed {hostname}."

    return _act(app, "domains", action)


@dashboard_blueprint.post("/apps/<app>/maintenance")
def maintenance(app: str) -> ResponseReturnValue:
    """Turn maintenance mode on or off."""
    enabled = _field("enabled") == "on"

    def action() -> str:
        context.store().set_maintenance(app, enabled)
        if enabled:
            return "Maintenance mode is on: visitors see the maintenance page."
        return "Maintenance mode is off: the app serves again."

    return _act(app, "top", action)


@dashboard_blueprint.post("/apps/<app>/destroy")
def destroy(app: str) -> ResponseReturnValue:
    """Destroy the app once its name has been typed to confirm."""
    if _field("confirm") != app:
        flash(f"Type the app's name, {app}, to confirm destroying it.", "danger")
        return _back(app, "destroy")
    try:
        destroy_app(app)
    except UserError as exc:
        flash(exc.message, "danger")
        return _back(app, "destroy")
    flash(f"Destroyed {app}: its dynos, releases, config and logs are gone.", "success")
    return redirect(url_for("dashboard.index"), code=303)
