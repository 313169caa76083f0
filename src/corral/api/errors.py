"""The API's errors: every failure under ``/api`` answers JSON ``{"id", "message"}``.

User errors carry their HTTP status (``http_status``; plain :class:`UserError` is 400), and
a ``Retry-After`` when they say when to try again (a busy store: 503);
HTTP errors raised by Flask (unknown route, wrong method, body too large) keep theirs;
anything else is a bug: 500 with a generic message, the traceback only in the server log.
Outside ``/api`` (the git endpoint) user errors answer one line of plain text.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from corral.errors import UserError

__all__ = ["ERROR_IDS", "BadRequest", "Unauthorized", "Unavailable", "error_response", "install"]

#: The ``id`` of an error answer, by HTTP status.
ERROR_IDS: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid",
    500: "internal_error",
    503: "unavailable",
}


class BadRequest(UserError):
    """The request itself is malformed: its JSON body or a parameter."""

    http_status = 400


class Unauthorized(UserError):
    """No token, or one the store does not know."""

    http_status = 401


class Unavailable(UserError):
    """The server cannot do this right now (a part it needs is not running)."""

    http_status = 503


def error_response(status: int, message: str) -> Response:
    """A JSON error answer with ``status``."""
    response = jsonify({"id": ERROR_IDS.get(status, "error"), "message": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="corral"'
    return response


def _is_api() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _user_error(exc: UserError) -> Response:
    status = getattr(exc, "http_status", 400)
    if not _is_api():
        response = Response(exc.message + "\n", status=status, mimetype="text/plain")
    else:
        response = error_response(status, exc.message)
    retry_after = getattr(exc, "retry_after", None)  # a busy store: worth trying again soon
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


_HTTP_MESSAGES = {
    404: "No such API endpoint; see /api/v1/openapi.json for the list.",
    405: "This endpoint does not accept {method}; see /api/v1/openapi.json for what it does.",
    413: "The request body is larger than the server accepts ({limit}).",
}


def _http_error(exc: HTTPException) -> Response | HTTPException:
    if not _is_api() or exc.code is None:
        return exc
    message = _HTTP_MESSAGES.get(exc.code, exc.description or exc.name)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    message = message.format(method=request.method, limit=_size(limit))
    response = error_response(exc.code, message)
    allowed = getattr(exc, "valid_methods", None)
    if allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def _bug(exc: Exception) -> Response:
    current_app.logger.exception("unexpected error in %s %s", request.method, request.path)
    return error_response(
        500, "The server hit an unexpected error; the details are in the server log."
    )


def _size(limit: int | None) -> str:
    if limit is None:
        return "no limit"
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g} MB"
    return f"{limit} bytes"


def install(app: Flask) -> None:
    """Register the error handlers on ``app``."""
    app.register_error_handler(UserError, _user_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _bug)
