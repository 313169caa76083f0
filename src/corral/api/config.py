"""Config vars: read them, and set or unset several at once (a new release when deployed).

A deployed app's change is a *pending* release: ``GET .../config`` keeps showing the
current release's vars until its dynos have started (``GET .../releases/<v>`` says when,
or why they failed). Values are returned only by the config routes and never logged.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.objects import json_body, release_json

__all__ = ["config_blueprint"]

config_blueprint = Blueprint("config", __name__)


@config_blueprint.get("/apps/<app>/config")
def show_config(app: str) -> ResponseReturnValue:
    """The app's config vars."""
    return jsonify(context.store().config(app))


@config_blueprint.patch("/apps/<app>/config")
def update_config(app: str) -> ResponseReturnValue:
    """Set the given vars and unset those given as null, in one release.

    Answers the config asked for (the pending release's, once deployed) and that release.
    """
    body = json_body()
    changes = {key: value for key, value in body.items() if value is not None}
    unset = [key for key, value in body.items() if value is None]
    store = context.store()
    release = store.set_config(app, changes, unset)
    return jsonify(
        {
            "config": store.config(app) if release is None else release.config,
            "release": None if release is None else release_json(release),
        }
    )
