"""The dashboard's blueprint, its error pages and the template filters its pages use."""

from __future__ import annotations

import time
from datetime import datetime

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from corral.errors import UserError

__all__ = ["FILTERS", "dashboard_blueprint"]

dashboard_blueprint = Blueprint("dashboard", __name__)


def when(iso: str | None) -> str:
    """An ISO 8601 timestamp as ``2026-11-24 10:00:00 UTC``."""
    if not iso:
        return "—"
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return iso


def duration(seconds: float) -> str:
    """A span of time the way people say it: ``45s``, ``12m 5s``, ``3h 20m``, ``2d 4h``."""
    seconds = max(int(seconds), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def ago(iso: str | None) -> str:
    """How long before now an ISO 8601 timestamp was: ``5m 2s ago``."""
    if not iso:
        return "—"
    try:
        then = datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return iso
    return f"{duration(time.time() - then)} ago"


def since(iso: str | None) -> str:
    """How long it has been since an ISO 8601 timestamp (an uptime): ``3h 20m``."""
    if not iso:
        return "—"
    try:
        return duration(time.time() - datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return "—"


def megabytes(size: int | None) -> str:
    """A byte count as ``52.3 MB``; ``—`` when unknown."""
    return "—" if size is None else f"{size / 1_000_000:.1f} MB"


def percent(value: float | None) -> str:
    """A CPU share as ``12.5 %``; ``—`` when unknown."""
    return "—" if value is None else f"{value:.1f} %"


#: The filters the dashboard's templates use, by name.
FILTERS = {
    "when": when,
    "ago": ago,
    "since": since,
    "megabytes": megabytes,
    "percent": percent,
}


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
