"""What the router answers when it cannot hand a request to the app, and its log lines.

Each failure has a Heroku-style code (``H10`` app crashed, ``H12`` request timeout, ...),
an HTML page for the browser and a ``desc`` for the logfmt line the app's log receives.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

__all__ = ["FAILURES", "Failure", "logfmt", "logfmt_value", "no_backend_failure", "render_page"]


@dataclass(frozen=True)
class Failure:
    """One way a request can fail at the router."""

    code: str | None
    status: int
    desc: str
    title: str
    message: str


FAILURES: dict[str, Failure] = {
    "no_app": Failure(
        None,
        404,
        "No such app",
        "No such app",
        "There is no app at {host}. Check the address, or create the app first.",
    ),
    "crashed": Failure(
        "H10",
        503,
        "App crashed",
        "Application error",
        "The app's web dynos crashed. If you own it, check `corral logs`.",
    ),
    "refused": Failure(
        "H10",
        503,
        "App crashed",
        "Application error",
        "No web dyno of this app accepted the connection. If you own it, check `corral logs`.",
    ),
    "timeout": Failure(
        "H12",
        503,
        "Request timeout",
        "Application error",
        "The app did not answer in time. If you own it, check `corral logs`.",
    ),
    "closed": Failure(
        "H13",
        503,
        "Connection closed without response",
        "Application error",
        "The app closed the connection without answering. If you own it, check `corral logs`.",
    ),
    "no_dynos": Failure(
        "H14",
        503,
        "No web dynos running",
        "Application error",
        "No web dynos are running for this app. If you own it, try `corral ps:scale web=1`.",
    ),
    # an app whose release has no web type: scaling web is no answer, a Procfile line is
    "no_web": Failure(
        "H14",
        503,
        "No web process type",
        "Application error",
        "This app has no web process, so nothing here answers HTTP. If you own it, add a "
        "`web:` line to its Procfile and deploy again.",
    ),
    "maintenance": Failure(
        "H80",
        503,
        "Maintenance mode",
        "Down for maintenance",
        "This app is undergoing maintenance. Please check back soon.",
    ),
    # the router itself is short of file descriptors: nothing the app did
    "no_files": Failure(
        "H99",
        503,
        "Platform error: the router is out of file descriptors",
        "Service unavailable",
        "The router is at its limit of open connections. Please try again in a moment.",
    ),
    "bad_request": Failure("H25", 400, "Bad request", "Bad request", "{reason}."),
    "body_too_large": Failure(
        "H25", 413, "Request body too large", "Request body too large", "{reason}."
    ),
    "body_timeout": Failure("H28", 408, "Client Connection Idle", "Request timeout", "{reason}."),
    "not_implemented": Failure("H25", 501, "Not implemented", "Not implemented", "{reason}."),
    "uri_too_long": Failure("H25", 414, "URI too long", "URI too long", "{reason}."),
    "headers_too_large": Failure(
        "H25", 431, "Headers too large", "Request headers too large", "{reason}."
    ),
    "method": Failure(
        "H25",
        405,
        "Method not allowed",
        "Method not allowed",
        "The router does not proxy {reason}.",
    ),
}


def no_backend_failure(*, crashed: bool, has_web: bool) -> str:
    """Which failure answers a request to an app with no healthy web dyno."""
    if crashed:
        return "crashed"
    return "no_dynos" if has_web else "no_web"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:15vh auto;max-width:36em;color:#333}}
h1{{font-weight:500}} small{{color:#888}}</style></head>
<body><h1>{title}</h1><p>{message}</p><p><small>Request ID: {request_id}</small></p></body>
</html>
"""


def render_page(failure: Failure, *, request_id: str, **values: str) -> bytes:
    """The HTML page for ``failure``; ``values`` (host, reason) are escaped into its message."""
    message = failure.message.format(**{k: html.escape(v) for k, v in values.items()})
    page = _PAGE.format(
        title=html.escape(failure.title), message=message, request_id=html.escape(request_id)
    )
    return page.encode()


# Values made only of these need no quotes; anything else (spaces, quotes, controls) gets them.
_PLAIN = re.compile(r'[^\x00-\x20\x7f"\\]+')


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def logfmt_value(text: str, *, quoted: bool = False) -> str:
    """``text`` as a logfmt value: quoted when it needs it, or always with ``quoted``."""
    return _quote(text) if quoted or not _PLAIN.fullmatch(text) else text


def logfmt(pairs: dict[str, object], *, quoted: tuple[str, ...] = ("fwd", "desc")) -> str:
    """``key=value`` pairs in order; values quoted when they need it (and always for ``quoted``)."""
    parts = []
    for key, value in pairs.items():
        text = value if type(value) is str else str(value)
        if key in quoted or not _PLAIN.fullmatch(text):
            text = _quote(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)
