"""The errors a user can cause through the store, each with the HTTP status the API answers with."""

from __future__ import annotations

from corral.errors import UserError

__all__ = ["Conflict", "Invalid", "NotFound", "StoreBusy"]


class NotFound(UserError):
    """The app, release, build, domain or token named does not exist."""

    http_status = 404


class Conflict(UserError):
    """The request clashes with the current state (a name taken, nothing to roll back)."""

    http_status = 409


class Invalid(UserError):
    """A value is malformed: an app name, a config key, a hostname, a dyno count."""

    http_status = 422


class StoreBusy(UserError):
    """Another process held the store's write lock for longer than a write waits for it.

    Nothing was changed; the same request a moment later normally goes through.
    """

    http_status = 503
    #: Seconds the API tells a client to wait before trying again (``Retry-After``).
    retry_after = 2

    def __init__(self, message: str = "The store is busy; try again in a moment.") -> None:
        super().__init__(message)
