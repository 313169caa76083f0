"""The CLI's side of the HTTP API: a small client that speaks docs/api.md, and CLI helpers.

The saved credentials live in :mod:`corral.credentials` (the server writes them too).

Every failure becomes one :class:`~corral.errors.UserError` sentence; the token is never printed.
"""

from __future__ import annotations

import json as _json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import quote

import click

from corral.cli.transport import Response, TransportError, send
from corral.credentials import Credentials
from corral.errors import UserError

__all__ = [
    "APP_OPTION",
    "JSON_OPTION",
    "ApiClient",
    "ApiError",
    "ago",
    "app_path",
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


#: Seconds to wait for a connection, and for each answer (a streamed one waits as long as it runs).
CONNECT_TIMEOUT = 10.0
TIMEOUT = 30.0


class ApiClient:
    """A client for the corral API that presents the token and maps failures to one line."""

    def __init__(self, credentials: Credentials, *, timeout: float = TIMEOUT) -> None:
        token = credentials.token
        if "\r" in token or "\n" in token or not token.isascii():
            what = "a line break" if "\r" in token or "\n" in token else "a character no token has"
            raise UserError(
                f"The API token holds {what}; log in again with "
                f"`corral login --server {credentials.server}`."
            )
        self.credentials = credentials
        self.server = credentials.server
        self.timeout = timeout

    @classmethod
    def load(cls) -> ApiClient:
        """A client for the saved (or ``$CORRAL_*``) credentials."""
        return cls(Credentials.load())

    def close(self) -> None:
        """Nothing to release: every request has its own connection, closed with its answer."""

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _failed(self, exc: TransportError) -> UserError:
        if not exc.connecting:
            return UserError(
                f"The connection to {self.server} broke off ({exc.reason}); run the command again."
            )
        return UserError(
            f"Cannot reach the corral server at {self.server}; is `corral server` running? "
            f"({exc.reason})"
        )

    def _check(self, response: Response) -> None:
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
            f"to {response.method} {response.path}.",
            status=response.status_code,
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float | None,
    ) -> Response:
        fields = {"Authorization": f"Bearer {self.credentials.token}", **(headers or {})}
        if json is not None:
            content = _json.dumps(json).encode()
            fields.setdefault("Content-Type", "application/json")
        return send(
            self.server,
            method,
            path,
            headers=fields,
            params=params,
            body=content,
            timeout=timeout,
            connect_timeout=CONNECT_TIMEOUT,
        )

    def request(
        self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Send one request; the answer's JSON (text for text/plain, None for 204).

        ``kwargs`` are ``json``, ``content``, ``headers`` and ``params``.
        """
        try:
            response = self._send(method, path, timeout=timeout or self.timeout, **kwargs)
            response.read()
        except TransportError as exc:
            raise self._failed(exc) from None
        self._check(response)
        if response.status_code == 204 or not response.read():
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

    def _open(self, method: str, path: str, **kwargs: Any) -> Response:
        """Send a request whose answer is read as it arrives: no read timeout once connected."""
        try:
            response = self._send(method, path, timeout=None, **kwargs)
            if not response.is_success:
                response.read()
        except TransportError as exc:
            raise self._failed(exc) from None
        self._check(response)
        return response

    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[str]:
        """Send one request and yield the answer's text lines as they arrive (no read timeout)."""
        response = self._open(method, path, **kwargs)
        try:
            yield from response.iter_lines()
        except TransportError as exc:
            raise self._failed(exc) from None
        finally:
            response.close()

    def download(self, path: str, target: BinaryIO) -> int:
        """GET ``path`` into ``target`` as it arrives; the bytes written."""
        written = 0
        response = self._open("GET", path)
        try:
            for chunk in response.iter_bytes():
                written += target.write(chunk)
        except TransportError as exc:
            raise self._failed(exc) from None
        finally:
            response.close()
        return written


# Options the API commands share.

APP_OPTION = click.option(
    "-a", "--app", help="App name (default: $CORRAL_APP or the corral git remote)."
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


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
