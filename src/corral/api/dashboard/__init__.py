"""The dashboard: server-rendered pages to see and steer every app, behind a sign-in.

Jinja templates with Bootstrap 5 served from the package itself (no CDN), and a little
plain JavaScript: live logs over server-sent events, a dynos table that refreshes itself,
config values fetched only when revealed, confirmations before rollbacks and removals.
"""

from __future__ import annotations

from flask import Flask
from flask_bootstrap import Bootstrap5

from corral.api.dashboard import actions, live, pages  # noqa: F401  (they add the routes)
from corral.api.dashboard.blueprint import FILTERS, dashboard_blueprint
from corral.api.dashboard.session import SECRET_FILE, csrf_token, secret_key
from corral.cookies import COOKIE_NAME

__all__ = ["SECRET_FILE", "dashboard_blueprint", "install", "secret_key"]


def install(app: Flask) -> None:
    """Add the dashboard to ``app``: session settings, local Bootstrap files, the pages."""
    app.config.update(
        SECRET_KEY=secret_key(app.extensions["corral.settings"].home),
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        BOOTSTRAP_SERVE_LOCAL=True,
    )
    app.config.setdefault("CORRAL_DASHBOARD_HEARTBEAT", live.HEARTBEAT)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.filters.update(FILTERS)
    Bootstrap5(app)
    app.register_blueprint(dashboard_blueprint)
