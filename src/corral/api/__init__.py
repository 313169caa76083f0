"""corral's API: a Flask app serving the JSON API under ``/api/v1`` and the dashboard at ``/``.

The API only writes desired state to the store; the supervisor converges the machine
to it. Build the app with :func:`create_app`; gunicorn serves :mod:`corral.api.wsgi`.
"""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from corral import __version__
from corral.api import auth, dashboard, errors
from corral.api.addons import addons_blueprint
from corral.api.apps import apps_blueprint
from corral.api.certs import certs_blueprint
from corral.api.config import config_blueprint
from corral.api.context import StoreHandle
from corral.api.deploys import deploys_blueprint
from corral.api.domains import domains_blueprint
from corral.api.formation import formation_blueprint
from corral.api.logs import logs_blueprint
from corral.api.oneoffs import oneoffs_blueprint
from corral.api.openapi import openapi_blueprint
from corral.api.releases import releases_blueprint
from corral.config import Settings

__all__ = ["API_PREFIX", "DEFAULT_MAX_UPLOAD", "create_app"]

API_PREFIX = "/api/v1"
#: The largest request body accepted (a source tarball), in bytes.
DEFAULT_MAX_UPLOAD = 200 * 1024 * 1024
#: How long deleting an app waits for the supervisor to stop its dynos, in seconds.
DELETE_WAIT = 40.0


def health() -> ResponseReturnValue:
    """Whether the API answers, and which corral it is (no token needed)."""
    return jsonify({"status": "ok", "version": __version__})


def create_app(
    settings: Settings,
    *,
    max_upload: int = DEFAULT_MAX_UPLOAD,
) -> Flask:
    """Build the API app for the corral home in ``settings``.

    Apps' web URLs use the settings' domain and router port. The store is opened on the
    first request of each process, not here.
    """
    app = Flask("corral.api")
    app.config.update(
        MAX_CONTENT_LENGTH=max_upload,
        CORRAL_DELETE_WAIT=DELETE_WAIT,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["corral.settings"] = settings
    app.extensions["corral.store_factory"] = StoreHandle(settings, app.extensions)
    errors.install(app)
    auth.install(app)
    app.add_url_rule(f"{API_PREFIX}/health", "health", health, methods=["GET"])
    for blueprint in (
        auth.auth_blueprint,
        openapi_blueprint,
        apps_blueprint,
        config_blueprint,
        releases_blueprint,
        formation_blueprint,
        domains_blueprint,
        certs_blueprint,
        logs_blueprint,
        deploys_blueprint,
        oneoffs_blueprint,
        addons_blueprint,
    ):
        app.register_blueprint(blueprint, url_prefix=API_PREFIX)
    dashboard.install(app)
    return app
