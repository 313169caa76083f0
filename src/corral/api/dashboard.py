"""The dashboard: server-rendered pages of apps, dynos, releases and live logs, behind a login.

The signed session cookie holds only the id of the token the user logged in with, and every
request checks that the token still exists, so revoking a token logs its sessions out.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_bootstrap import Bootstrap5
from werkzeug.exceptions import HTTPException

from corral.api import context
from corral.api.formation import dyno_json
from corral.api.logs import _client_gone
from corral.api.objects import app_json, domain_json, formation_json, release_json
from corral.errors import UserError
from corral.runtime.logs import LogLine, follow, recent

__all__ = ["SECRET_FILE", "dashboard_blueprint", "install", "secret_key"]

#: The file in the corral home that holds the key signing session cookies.
SECRET_FILE = "dashboard-secret"
#: How many recent log lines the app page shows before the live ones.
RECENT_LINES = 100
#: How many lines a reconnecting log stream may catch up on.
CATCH_UP_LINES = 1000
#: Seconds between SSE comments that keep an idle log stream open.
HEARTBEAT = 15.0
_PUBLIC_ENDPOINTS = frozenset({"dashboard.login_form", "dashboard.login"})

dashboard_blueprint = Blueprint("dashboard", __name__)


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


def csrf_token() -> str:
    """This session's CSRF token, for the hidden field of every POST form."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _check_csrf() -> None:
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
        if request.endpoint == "dashboard.log_stream":
            return Response("Log in to the dashboard first.\n", 401, mimetype="text/plain")
        return redirect(url_for("dashboard.login_form"))
    g.dashboard_token = token
    return None


@dashboard_blueprint.get("/login")
def login_form() -> ResponseReturnValue:
    """The login form: one field for an API token."""
    return render_template("login.html")


@dashboard_blueprint.post("/login")
def login() -> ResponseReturnValue:
    """Check the token; on success start a fresh session holding only the token's id."""
    _check_csrf()
    token = context.store().verify_token(request.form.get("token", "").strip())
    if token is None:
        message = (
            "That token is not valid. Use the token `corral server` printed "
            "or one from `corral login`."
        )
        return render_template("login.html", error=message), 401
    session.clear()
    session["token_id"] = token.id
    session["csrf"] = secrets.token_urlsafe(32)
    return redirect(url_for("dashboard.index"))


@dashboard_blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session."""
    _check_csrf()
    session.clear()
    return redirect(url_for("dashboard.login_form"))


@dashboard_blueprint.get("/")
def index() -> ResponseReturnValue:
    """Every app with its web URL, current release, dyno counts by state and maintenance mode."""
    store = context.store()
    states: dict[str, Counter[str]] = {}
    for dyno in store.dynos():
        states.setdefault(dyno.app, Counter())[dyno.state] += 1
    apps = [
        {**app_json(app, context.domain(), context.router_port()), "dynos": states.get(app.name)}
        for app in store.list_apps()
    ]
    return render_template("apps.html", apps=apps)


@dashboard_blueprint.get("/apps/<app>")
def app_page(app: str) -> ResponseReturnValue:
    """One app: its formation, dynos, releases, domains and recent logs (then live ones)."""
    store = context.store()
    record = store.get_app(app)
    release = store.current_release(app)
    lines = recent(context.settings().logs_dir(app), RECENT_LINES)
    return render_template(
        "app.html",
        app=app_json(record, context.domain(), context.router_port()),
        release=None if release is None else release_json(release),
        formation=[formation_json(entry, release) for entry in store.formation(app)],
        dynos=[dyno_json(dyno) for dyno in store.dynos(app)],
        releases=[release_json(item) for item in store.releases(app)],
        domains=[domain_json(domain) for domain in store.domains(app)],
        lines=[str(line) for line in lines],
        since=lines[-1].timestamp if lines else "",
    )


def _event(line: LogLine) -> str:
    # A carriage return would end the SSE field early.
    data = str(line).replace("\r", "")
    return f"id: {line.timestamp}\ndata: {data}\n\n"


@dashboard_blueprint.get("/apps/<app>/logs/stream")
def log_stream(app: str) -> ResponseReturnValue:
    """New log lines as server-sent events, one line each, until the client leaves.

    Lines after ``since`` (or the ``Last-Event-ID`` of a reconnecting browser) come first,
    so nothing written between the page load and this request is missed.
    """
    context.store().get_app(app)
    log_dir = context.settings().logs_dir(app)
    since = request.headers.get("Last-Event-ID") or request.args.get("since", "")
    heartbeat = current_app.config["CORRAL_DASHBOARD_HEARTBEAT"]
    environ = request.environ
    # Follow first, then read the backlog: a line in both is sent once, and none is lost.
    new_lines = follow(log_dir, heartbeat=True)
    first = next(new_lines)
    # Without ``since`` the page that opened the stream already shows the recent lines.
    backlog = (
        [line for line in recent(log_dir, CATCH_UP_LINES) if line.timestamp > since]
        if since
        else []
    )
    sent = set(backlog)

    def stream() -> Iterator[str]:
        try:
            yield "retry: 3000\n: connected\n\n"
            yield from (_event(line) for line in backlog)
            quiet_since = time.monotonic()
            if first is not None and first not in sent:
                yield _event(first)
            for line in new_lines:
                if line is not None:
                    if line not in sent:
                        quiet_since = time.monotonic()
                        yield _event(line)
                elif _client_gone(environ):
                    return
                elif time.monotonic() - quiet_since >= heartbeat:
                    quiet_since = time.monotonic()
                    yield ": heartbeat\n\n"
        finally:
            new_lines.close()

    return Response(
        stream_with_context(stream()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _when(iso: str | None) -> str:
    """An ISO 8601 timestamp as ``2026-11-24 10:00:00 UTC``."""
    if not iso:
        return "—"
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return iso


def _error_page(status: int, message: str) -> ResponseReturnValue:
    return render_template("error.html", status=status, message=message), status


@dashboard_blueprint.errorhandler(UserError)
def _user_error(exc: UserError) -> ResponseReturnValue:
    return _error_page(getattr(exc, "http_status", 400), exc.message)


@dashboard_blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> ResponseReturnValue:
    return _error_page(exc.code or 500, exc.description or exc.name)


@dashboard_blueprint.errorhandler(Exception)
def _bug(exc: Exception) -> ResponseReturnValue:
    current_app.logger.exception("unexpected error in %s %s", request.method, request.path)
    return _error_page(500, "The server hit an unexpected error; the details are in its log.")


def install(app: Flask) -> None:
    """Add the dashboard to ``app``: session settings, local Bootstrap files, the pages."""
    app.config.update(
        SECRET_KEY=secret_key(app.extensions["corral.settings"].home),
        SESSION_COOKIE_NAME="corral_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        BOOTSTRAP_SERVE_LOCAL=True,
    )
    app.config.setdefault("CORRAL_DASHBOARD_HEARTBEAT", HEARTBEAT)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.filters["when"] = _when
    Bootstrap5(app)
    app.register_blueprint(dashboard_blueprint)
