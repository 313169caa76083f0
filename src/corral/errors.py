"""The errors a user can cause: each carries one sentence saying what was wrong and what to do.

The CLI prints the message and exits non-zero; anything else escaping is a bug.
"""

from __future__ import annotations

#: The ``id`` of the API's JSON error answer (``{"id", "message"}``), by HTTP status.
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
#: What a request under ``/api/v1/`` without a valid token is told.
TOKEN_REQUIRED = (
    "A valid API token is required (Authorization: Bearer <token>); "
    "run `corral login` or use the token `corral server` printed."
)


class UserError(Exception):
    """Something the user can fix; the message says what and how."""

    exit_code = 1

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Extra lines worth showing (e.g. an installer's own error output).
        self.details = details or []


class BuildError(UserError):
    """A build failed; nothing that was serving changed."""


class ProcfileError(BuildError):
    """The Procfile is malformed or names nothing runnable."""


class PythonNotFound(BuildError):
    """The requested Python version is not installed on this host."""
