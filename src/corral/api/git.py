"""The git smart-HTTP endpoint of the API: ``/git/<app>.git/...`` through ``git http-backend``.

Only the Flask side lives here (authentication, the app check, streaming the answer); the
repository, its deploy hook and the backend process are :mod:`corral.deploy.git`'s.
"""

from __future__ import annotations

import functools

from flask import Blueprint, Response, current_app, request

from corral.api.auth import check_basic_auth
from corral.deploy.git import BackendResponse, backend_environ, ensure_repo
from corral.store.names import validate_app_name

__all__ = ["git_blueprint"]

git_blueprint = Blueprint("git", __name__)


def _plain(status: int, message: str, **headers: str) -> Response:
    # git prints the body of a failed request, so it says what to do in one line
    return Response(message + "\n", status=status, mimetype="text/plain", headers=headers)


@git_blueprint.route("/git/<app>.git/<path:rest>", methods=["GET", "POST"])
def git(app: str, rest: str) -> Response:
    """Serve git fetch/push for one app, authenticated with the API token as the password."""
    if not check_basic_auth(request):
        server = request.host_url.rstrip("/")
        return _plain(
            401,
            "corral: the token is missing or was refused; log in with "
            f"`corral login --server {server}`, then run `corral git:remote -a {app}`.",
            **{"WWW-Authenticate": 'Basic realm="corral"'},
        )
    settings = current_app.extensions["corral.settings"]
    store = current_app.extensions["corral.store_factory"]()
    validate_app_name(app)
    store.get_app(app)
    ensure_repo(settings, app)
    env = backend_environ(settings, app, rest, request.environ)
    deploy = None
    if rest == "git-receive-pack" and request.method == "POST":
        # the hook hands the deploy back here: this process has the builder loaded
        pipeline = current_app.extensions["corral.pipeline"]
        deploy = functools.partial(pipeline.deploy_source, app)
    backend = BackendResponse(env, request.stream, deploy)
    return Response(backend.body(), status=backend.status, headers=backend.headers)
