"""Releases: list them, show one with its ``pip freeze``, roll back to one."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.errors import BadRequest
from corral.api.objects import json_body, release_json, slug_freeze
from corral.store import NotFound, Release

__all__ = ["releases_blueprint"]

releases_blueprint = Blueprint("releases", __name__)


def _version(value: object) -> int | None:
    """``3`` from ``3``, ``"3"`` or ``"v3"``; None if it is none of those."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        digits = value.strip().removeprefix("v")
        if digits.isdigit():
            return int(digits)
    return None


@releases_blueprint.get("/apps/<app>/releases")
def list_releases(app: str) -> ResponseReturnValue:
    """Every release of the app, newest first."""
    return jsonify([release_json(release) for release in context.store().releases(app)])


def _release(app: str, version: str) -> Release:
    """The release ``version`` (``3`` or ``v3``) of ``app``; NotFound for anything else."""
    number = _version(version)
    if number is None:
        context.store().get_app(app)
        raise NotFound(f"{version!r} is not a release of {app}; give a version such as 3 or v3.")
    return context.store().release(app, number)


@releases_blueprint.get("/apps/<app>/releases/<version>")
def show_release(app: str, version: str) -> ResponseReturnValue:
    """One release, with the packages its slug froze."""
    release = _release(app, version)
    return jsonify({**release_json(release), "freeze": slug_freeze(release) or []})


@releases_blueprint.get("/apps/<app>/releases/<version>/output")
def release_output(app: str, version: str) -> ResponseReturnValue:
    """What the release's release phase printed, as plain text."""
    release = _release(app, version)
    path = context.settings().release_output_path(app, release.version)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise NotFound(
            f"{release.name} of {app} ran no release phase (a `release:` line in its Procfile), "
            "so it has no release output."
        ) from None
    return Response(text, mimetype="text/plain")


@releases_blueprint.post("/apps/<app>/rollback")
def rollback(app: str) -> ResponseReturnValue:
    """A new pending release restoring an older one's slug and config (default: the previous).

    It becomes current once its dynos have started; poll ``GET .../releases/<v>`` for that.
    """
    raw = json_body().get("version")
    version = None if raw is None else _version(raw)
    if raw is not None and version is None:
        raise BadRequest(f'"version" must be a release number such as 3, not {raw!r}.')
    release = context.store().rollback(app, version, keep=context.settings().keep_releases)
    return jsonify(release_json(release)), 201
