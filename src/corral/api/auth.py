"""Token authentication: ``Authorization: Bearer <token>`` on the API, HTTP Basic for git.

The store compares secrets in constant time; here we only pick the secret out of the
request. The token that authenticated a request is in ``g.token``.
"""

from __future__ import annotations

import base64
import binascii

from flask import Blueprint, Flask, Request, g, jsonify, request
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.errors import Unauthorized
from corral.api.objects import token_json
from corral.errors import TOKEN_REQUIRED
from corral.store import Token

__all__ = ["PUBLIC_PATHS", "auth_blueprint", "check_basic_auth", "install"]

#: API paths anyone may read without a token.
PUBLIC_PATHS = frozenset({"/api/v1/health", "/api/v1/openapi.json"})

auth_blueprint = Blueprint("auth", __name__)


def _verify(secret: str) -> Token | None:
    return context.store().verify_token(secret) if secret else None


def bearer_token(req: Request) -> Token | None:
    """The token of a ``Bearer`` Authorization header, if it is a valid one."""
    scheme, _, secret = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return _verify(secret.strip())


def check_basic_auth(req: Request) -> bool:
    """Whether the request carries HTTP Basic credentials whose password is a valid token."""
    scheme, _, encoded = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    _user, sep, password = decoded.partition(":")
    return bool(sep) and _verify(password) is not None


def _require_token() -> None:
    if not request.path.startswith("/api/v1/") or request.path in PUBLIC_PATHS:
        return
    token = bearer_token(request)
    if token is None:
        raise Unauthorized(TOKEN_REQUIRED)
    g.token = token


@auth_blueprint.get("/whoami")
def whoami() -> ResponseReturnValue:
    """The token the request was made with."""
    return jsonify({"token": token_json(g.token)})


def install(app: Flask) -> None:
    """Check the token before every request under ``/api/v1/`` but the public ones."""
    app.before_request(_require_token)
