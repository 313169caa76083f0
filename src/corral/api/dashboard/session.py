"""Signing in and out of the dashboard, and the CSRF token every form carries.

The signed session cookie holds only the id of the token the user signed in with, and every
request checks that the token still exists, so revoking a token signs its sessions out.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Response, abort, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.dashboard.blueprint import dashboard_blueprint
from corral.cookies import SECRET_FILE, SIGN_IN_FIRST, secret_key

__all__ = ["SECRET_FILE", "check_csrf", "csrf_token", "secret_key"]

_PUBLIC_ENDPOINTS = frozenset({"dashboard.login_form", "dashboard.login"})
#: Endpoints fetched by scripts, which get a 401 instead of a redirect to the login form.
_SCRIPT_ENDPOINTS = frozenset(
    {"dashboard.log_stream", "dashboard.app_live", "dashboard.config_value"}
)


def csrf_token() -> str:
    """This session's CSRF token, for the hidden field of every POST form."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """Refuse (400) a form whose CSRF field is not this session's token."""
    expected = session.get("csrf", "").encode()
    given = request.form.get("csrf_token", "").encode()
    if not expected or not hmac.compare_digest(expected, given):
        abort(400, "The form expired or did not come from this dashboard; reload and try again.")


@dashboard_blueprint.before_request
def _require_session() -> ResponseReturnValue | None:
    if request.endpoint in _PUBLIC_ENDPOINTS:
        return None
    token_id = session.get("token_id")
    tokens = context.store().tokens() if token_id else []
    token = next((token for token in tokens if token.id == token_id), None)
    if token is None:
        session.pop("token_id", None)
        if request.endpoint in _SCRIPT_ENDPOINTS:
            return Response(f"{SIGN_IN_FIRST}\n", 401, mimetype="text/plain")
        return redirect(url_for("dashboard.login_form"))
    g.dashboard_token = token
    if request.method == "POST":
        check_csrf()
    return None


@dashboard_blueprint.get("/login")
def login_form() -> ResponseReturnValue:
    """The sign-in form: one field for an API token."""
    return render_template("login.html")


@dashboard_blueprint.post("/login")
def login() -> ResponseReturnValue:
    """Check the token; on success start a fresh session holding only the token's id."""
    check_csrf()
    token = context.store().verify_token(request.form.get("token", "").strip())
    if token is None:
        message = (
            "That token is not valid. Use the admin token `corral server` printed "
            "(the file admin-token in its home) or the one `corral login` saved."
        )
        return render_template("login.html", error=message), 401
    session.clear()
    session["token_id"] = token.id
    session["csrf"] = secrets.token_urlsafe(32)
    return redirect(url_for("dashboard.index"))


@dashboard_blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session (its CSRF token was checked before this view)."""
    session.clear()
    return redirect(url_for("dashboard.login_form"))
