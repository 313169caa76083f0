"""Releases: list them, show one with its ``pip freeze``, roll back to one."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.errors import BadRequest
from corral.api.objects import json_body, release_json, release_number, slug_freeze
from corral.store import NotFound, Release

__all__ = ["releases_blueprint"]

releases_blueprint = Blueprint("releases", __name__)

#: How a release is named in a path or a body: ``3`` or ``v3`` (ASCII digits).
_NUMBERED = re.compile(r"v?-?[0-9]+")


def _numbered(value: object) -> bool:
    """Whether ``value`` is written as a release number (``3``, ``"v3"``, ``-1``), one that
    some release could have or not."""
    if isinstance(value, str):
        return _NUMBERED.fullmatch(value) is not None
    return isinstance(value, int) and not isinstance(value, bool)


def _no_such_release(app: str, version: object) -> NotFound:
    """A number that is no release of ``app`` (none has 0, -1 or more than 2**63 - 1)."""
    context.store().get_app(app)  # no such app says so first
    shown = str(version).removeprefix("v")
    return NotFound(f"{app} has no release v{shown}; run `corral releases -a {app}` to list them.")


@releases_blueprint.get("/apps/<app>/releases")
def list_releases(app: str) -> ResponseReturnValue:
    """Every release of the app, newest first."""
    return jsonify([release_json(release) for release in context.store().releases(app)])


def _release(app: str, version: str) -> Release:
    """The release ``version`` (``3`` or ``v3``) of ``app``; NotFound for anything else."""
    number = release_number(version)
    if number is not None:
        return context.store().release(app, number)
    if _numbered(version):
        raise _no_such_release(app, version)
    context.store().get_app(app)
    raise NotFound(f"{version!r} is not a release of {app}; give a version such as 3 or v3.")


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
    version = None if raw is None else release_number(raw)
    if raw is not None and version is None:
        if _numbered(raw):
            raise _no_such_release(app, raw)
        raise BadRequest(f'"version" must be a release number such as 3, not {raw!r}.')
    release = context.store().rollback(app, version, keep=context.settings().keep_releases)
    return jsonify(release_json(release)), 201
