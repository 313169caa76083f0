"""The CLI's side of the HTTP API: a small client that speaks docs/api.md, and CLI helpers.

The saved credentials live in :mod:`corral.credentials` (the server writes them too).

Every failure becomes one :class:`~corral.errors.UserError` sentence; the token is never printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import quote

import click
import httpx
from rich.console import Console

from corral.credentials import Credentials
from corral.errors import UserError

__all__ = [
    "APP_OPTION",
    "JSON_OPTION",
    "ApiClient",
    "ApiError",
    "action",
    "ago",
    "app_path",
    "console",
    "echo_json",
    "git_url",
]


def git_url(server: str, app: str) -> str:
    """The app's git smart-HTTP repository on ``server``."""
    return f"{server.rstrip('/')}/git/{quote(app, safe='')}.git"


def app_path(app: str, *rest: str) -> str:
    """The API path of ``app`` (and a sub-resource), with every part URL-quoted."""
    parts = [quote(part, safe="") for part in (app, *rest)]
    return "/api/v1/apps/" + "/".join(parts)


def addon_path(addon: str, *rest: str) -> str:
    """The API path of add-on ``addon`` (and a sub-resource), every part URL-quoted."""
    return "/api/v1/addons/" + "/".join(quote(part, safe="") for part in (addon, *rest))


class ApiError(UserError):
    """The server answered with an error; ``status`` and ``id`` say which (docs/api.md)."""

    def __init__(self, message: str, *, status: int, error_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.id = error_id


def _transport_reason(exc: httpx.TransportError) -> str:
    text = str(exc).lower()
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if "refused" in text:
        return "connection refused"
    if "name or service" in text or "nodename" in text or "resolution" in text:
        return "unknown host"
    return str(exc) or type(exc).__name__


class ApiClient:
    """An httpx client for the corral API that presents the token and maps failures to one line."""

    def __init__(self, credentials: Credentials, *, timeout: float = 30.0) -> None:
        self.credentials = credentials
        self.server = credentials.server
        self._http = httpx.Client(
            base_url=credentials.server,
            headers={"Authorization": f"Bearer {credentials.token}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
        )

    @classmethod
    def load(cls) -> ApiClient:
        """A client for the saved (or ``$CORRAL_*``) credentials."""
        return cls(Credentials.load())

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unreachable(self, exc: httpx.TransportError) -> UserError:
        return UserError(
            f"Cannot reach the corral server at {self.server}; is `corral server` running? "
            f"({_transport_reason(exc)})"
        )

    def _check(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        if response.status_code == 401:
            raise ApiError(
                "The server refused the token; log in again with "
                f"`corral login --server {self.server}`.",
                status=401,
                error_id="unauthorized",
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("message"):
            raise ApiError(
                str(body["message"]), status=response.status_code, error_id=body.get("id")
            )
        raise ApiError(
            f"The server answered {response.status_code} {response.reason_phrase} "
            f"to {response.request.method} {response.request.url.path}.",
            status=response.status_code,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; the answer's JSON (text for text/plain, None for 204)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        self._check(response)
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def get(self, path: str, **kwargs: Any) -> Any:
        """GET ``path``."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        """POST ``json`` to ``path``."""
        return self.request("POST", path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        """PATCH ``path`` with ``json``."""
        return self.request("PATCH", path, json=json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        """PUT ``json`` at ``path``."""
        return self.request("PUT", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        """DELETE ``path``."""
        return self.request("DELETE", path, **kwargs)

    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[str]:
        """Send one request and yield the answer's text lines as they arrive (no read timeout)."""
        kwargs.setdefault("timeout", httpx.Timeout(30.0, connect=10.0, read=None, write=None))
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if not response.is_success:
                    response.read()
                    self._check(response)
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.ConnectError):
                raise self._unreachable(exc) from None
            raise UserError(
                f"The connection to {self.server} broke off ({_transport_reason(exc)}); "
                "run the command again."
            ) from None

    def download(self, path: str, target: BinaryIO) -> int:
        """GET ``path`` into ``target`` as it arrives; the bytes written."""
        written = 0
        timeout = httpx.Timeout(30.0, connect=10.0, read=None, write=None)
        try:
            with self._http.stream("GET", path, timeout=timeout) as response:
                if not response.is_success:
                    response.read()
                    self._check(response)
                for chunk in response.iter_bytes():
                    written += target.write(chunk)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        return written


# What the API commands share when printing: kept here so common.py stays untouched.

#: Normal command output; diagnostics go to ``common.err_console``.
console = Console(highlight=False, soft_wrap=True)

APP_OPTION = click.option(
    "-a", "--app", help="App name (default: $CORRAL_APP or the corral git remote)."
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2))


@contextmanager
def action(text: str) -> Iterator[list[str]]:
    """Print ``text... `` then ``done`` (plus whatever the block appends) or ``!`` on failure."""
    suffix: list[str] = []
    console.print(f"{text}... ", end="", markup=False)
    try:
        yield suffix
    except BaseException:
        console.print("!", markup=False)
        raise
    console.print(", ".join(["done", *suffix]), markup=False)


def ago(timestamp: str | None, now: datetime | None = None) -> str:
    """An ISO 8601 timestamp as a short relative time: ``12s ago``, ``3m ago``, ``2d ago``."""
    if not timestamp:
        return ""
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
