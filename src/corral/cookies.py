"""The dashboard's signed session cookie: the key that signs it, and reading one outside Flask.

The API (Flask) writes and reads the cookie in its requests; the streams service, which
serves the dashboard's live logs without Flask's request cycle, reads it with the same
serializer Flask uses, so both always agree on what a valid session is.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature
from werkzeug.http import parse_cookie

__all__ = ["COOKIE_NAME", "SECRET_FILE", "SIGN_IN_FIRST", "SessionReader", "secret_key"]

#: The file in the corral home that holds the key signing session cookies.
SECRET_FILE = "dashboard-secret"
#: The name of the dashboard's session cookie.
COOKIE_NAME = "corral_session"
#: What a script of the dashboard (its live logs, ...) is told without a valid session.
SIGN_IN_FIRST = "Sign in to the dashboard first."


def secret_key(home: Path) -> str:
    """The key signing session cookies: made once in ``home`` (mode 0600), shared by all workers."""
    path = home / SECRET_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        draft = home / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
        finally:
            os.close(fd)
        try:
            # link() never replaces: when workers race, the first key written wins for all.
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


class SessionReader:
    """Reads the token id a dashboard session cookie holds, as the dashboard's Flask app would."""

    def __init__(self, home: Path) -> None:
        app = Flask("corral.cookies")
        app.secret_key = secret_key(home)
        serializer = SecureCookieSessionInterface().get_signing_serializer(app)
        assert serializer is not None  # only None without a secret key
        self._serializer = serializer
        self._max_age = int(app.permanent_session_lifetime.total_seconds())

    def token_id(self, cookie_header: str) -> str | None:
        """The id of the token the session in a ``Cookie`` header signed in with, if any."""
        value = parse_cookie(cookie_header).get(COOKIE_NAME)
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self._max_age)
        except BadSignature:
            return None
        token_id = data.get("token_id") if isinstance(data, dict) else None
        return token_id if isinstance(token_id, str) else None
