"""The git smart-HTTP endpoint of the API: ``/git/<app>.git/...`` through ``git http-backend``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from flask import Blueprint, Flask, Response, current_app, request

from corral.api.auth import check_basic_auth
from corral.deploy.git import BackendResponse, backend_environ, ensure_repo
from corral.deploy.pipeline import Deployer
from corral.store.names import validate_app_name

git_blueprint = Blueprint("git", __name__)


def _plain(status: int, message: str, **headers: str) -> Response:
    # git prints the body of a failed request, so it says what to do in one line
    return Response(message + "\n", status=status, mimetype="text/plain", headers=headers)


@git_blueprint.route("/git/<app>.git/<path:rest>", methods=["GET", "POST"])
def git(app: str, rest: str) -> Response:
    """Serve git fetch/push for one app, authenticated with the API token as the password."""
    if not check_basic_auth(request):
        return _plain(
            401,
            "corral: authentication failed; run `corral git:remote -a APP` to set up the token.",
            **{"WWW-Authenticate": 'Basic realm="corral"'},
        )
    settings = current_app.extensions["corral.settings"]
    store = current_app.extensions["corral.store_factory"]()
    validate_app_name(app)
    store.get_app(app)
    ensure_repo(settings, app)
    env = backend_environ(settings, app, rest, request.environ)
    backend = BackendResponse(env, request.stream)
    return Response(backend.body(), status=backend.status, headers=backend.headers)


class ProcessDeployer:
    """The deployer the API's routes call, made on first use in each gunicorn worker."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._deployer: Deployer | None = None

    def _get(self) -> Deployer:
        if self._deployer is None:
            config = self._app.config
            url = f"http://{{app}}.{config['CORRAL_DOMAIN']}:{config['CORRAL_ROUTER_PORT']}/"
            store = self._app.extensions["corral.store_factory"]()
            settings = self._app.extensions["corral.settings"]
            self._deployer = Deployer(settings, store, web_url=url)
        return self._deployer

    def build(self, app: str, stream: BinaryIO) -> Iterator[str]:
        """Deploy an uploaded tarball (``POST /apps/<app>/builds``)."""
        return self._get().build_tarball(app, stream)

    def run(self, app: str, command: list[str]) -> Iterator[str]:
        """A one-off dyno (``POST /apps/<app>/run``)."""
        return self._get().run(app, command)


def install(app: Flask) -> Flask:
    """Give the API its deploys: the builds/run routes' deployer and the git endpoint."""
    app.extensions["corral.deployer"] = ProcessDeployer(app)
    app.register_blueprint(git_blueprint)
    return app
