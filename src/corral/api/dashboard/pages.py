"""The dashboard's pages: the apps overview, an app's page and its build logs."""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.addons import addon_rows
from corral.api.dashboard.blueprint import dashboard_blueprint
from corral.api.formation import dynos_json
from corral.api.objects import (
    app_json,
    build_json,
    cert_json,
    domain_json,
    formation_json,
    iso,
    release_json,
)
from corral.runtime.logs import recent
from corral.store import AppSummary, Build, NotFound, Store

__all__ = ["LOG_SOURCES", "RECENT_LINES", "git_lines"]

#: How many recent log lines the app page shows before the live ones.
RECENT_LINES = 100
#: How many builds the app page lists.
RECENT_BUILDS = 10
#: The most of a build log a page shows (its end), in bytes.
MAX_BUILD_LOG = 1_000_000
#: The sources a log line can come from, for the log filter.
LOG_SOURCES = ("app", "router", "corral", "build")


def git_lines(app: str) -> list[str]:
    """The commands that push a repository to ``app`` from the user's machine."""
    return [
        f"git remote add corral {request.host_url}git/{app}.git",
        "git push corral main",
    ]


def _summary_json(summary: AppSummary) -> dict[str, Any]:
    release = summary.release
    return {
        **app_json(summary.app, context.settings()),
        "status": summary.status,
        "deployed_at": None if release is None else iso(release.created_at),
        "dynos": {kind: sum(states.values()) for kind, states in sorted(summary.dynos.items())},
    }


@dashboard_blueprint.get("/")
def index() -> ResponseReturnValue:
    """Every app: status, web URL, current release and when it was deployed, dyno counts."""
    apps = [_summary_json(summary) for summary in context.store().app_summaries()]
    return render_template("apps.html", apps=apps)


def _log_filters() -> tuple[str, str]:
    source = request.args.get("source", "")
    dyno = request.args.get("dyno", "")
    return (source if source in LOG_SOURCES else ""), dyno


def _builds_by_slug(builds: list[Build]) -> dict[str, dict[str, Any]]:
    by_slug: dict[str, dict[str, Any]] = {}
    for build in reversed(builds):  # oldest first, so the newest build of a slug wins
        if build.slug_id:
            by_slug[build.slug_id] = build_json(build)
    return by_slug


@dashboard_blueprint.get("/apps/<app>")
def app_page(app: str) -> ResponseReturnValue:
    """One app: dynos and scaling, releases and rollback, config, domains, add-ons, live
    logs."""
    store = context.store()
    live = _live_context(store, app)  # first: it refuses an unknown app before any file is read
    source, dyno = _log_filters()
    lines = recent(context.settings().logs_dir(app), RECENT_LINES, source=source, dyno=dyno)
    live["builds"] = live["builds"][:RECENT_BUILDS]
    current = live.pop("release_record")
    return render_template(
        "app.html",
        **live,
        formation=[formation_json(entry, current) for entry in store.formation(app)],
        config_keys=sorted(store.config(app)),
        domains=[domain_json(domain) for domain in store.domains(app)],
        # recorded only with `corral server --https` (or certs:add): no section otherwise
        certs=[cert_json(cert) for cert in store.certificates(app)],
        addons=addon_rows(app),
        git_lines=git_lines(app),
        lines=[str(line) for line in lines],
        since=lines[-1].timestamp if lines else "",
        log_sources=LOG_SOURCES,
        log_source=source,
        log_dyno=dyno,
    )


@dashboard_blueprint.get("/apps/<app>/live")
def app_live(app: str) -> ResponseReturnValue:
    """The parts of the app page that change by themselves (status, dynos, releases), which
    the page fetches every few seconds."""
    return render_template("_app_live.html", **_live_context(context.store(), app))


def _live_context(store: Store, app: str) -> dict[str, Any]:
    """What the app page's self-refreshing parts show."""
    summary = store.app_summary(app)
    release = summary.release
    builds = store.builds(app)
    dynos = dynos_json(store.dynos(app))
    return {
        "app": app_json(summary.app, context.settings()),
        "status": summary.status,
        "release_record": release,
        "release": None if release is None else release_json(release),
        "releases": [release_json(item) for item in store.releases(app)],
        "builds": [build_json(build) for build in builds],
        "build_of_slug": _builds_by_slug(builds),
        "dynos": dynos,
        "dyno_names": sorted({d["type"] for d in dynos} | {d["name"] for d in dynos}),
    }


@dashboard_blueprint.get("/apps/<app>/config/<key>")
def config_value(app: str, key: str) -> ResponseReturnValue:
    """One config var's value, fetched only when the user reveals it."""
    config = context.store().config(app)
    if key not in config:
        raise NotFound(f"{app} has no config var {key}.")
    response = jsonify({"key": key, "value": config[key]})
    response.headers["Cache-Control"] = "no-store"
    return response


def _read_log(build: Build) -> tuple[str, bool]:
    """The end of a build's log and whether the start was cut off."""
    if build.log_path is None:
        return "", False
    try:
        with open(build.log_path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(size - MAX_BUILD_LOG, 0))
            return handle.read().decode("utf-8", "replace"), size > MAX_BUILD_LOG
    except OSError:
        return "", False


@dashboard_blueprint.get("/apps/<app>/builds/<build_id>")
def build_page(app: str, build_id: str) -> ResponseReturnValue:
    """One build's log, as the pusher saw it."""
    store = context.store()
    record = store.get_app(app)
    try:
        build = store.get_build(build_id)
    except NotFound:
        build = None
    if build is None or build.app != app:
        abort(404, f"{app} has no build {build_id}.")
    text, cut = _read_log(build)
    releases = [release_json(item) for item in store.releases(app) if item.slug_id == build.slug_id]
    return render_template(
        "build.html",
        app=app_json(record, context.settings()),
        build=build_json(build),
        log=text,
        cut=cut,
        releases=releases,
    )
