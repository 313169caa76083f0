"""Just enough HTTP/1.1 for the streams service: read a request head, write answers.

Requests reach the service only through the router, which has already parsed, checked
and re-framed them (and buffered any body), so a head here is well formed; anything else
is answered 400 and the connection closed. Every answer closes its connection: a stream
ends when it does, and the few short answers (an error, a non-tail log read) are rare.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from corral.errors import ERROR_IDS

__all__ = ["MAX_HEAD", "Answer", "Request", "chunk", "read_request", "stream_head"]

#: The largest request head accepted, in bytes (the router's own limit is below this).
MAX_HEAD = 64 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
_REASONS |= {405: "Method Not Allowed", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Request:
    """One request head: method, decoded path, query parameters (first of each), headers."""

    method: str
    path: str
    query: dict[str, str]
    #: Lower-cased names; a repeated header keeps its first value.
    headers: dict[str, str]

    def arg(self, name: str, default: str = "") -> str:
        """The query parameter ``name``, or ``default``."""
        return self.query.get(name, default)


@dataclass(frozen=True)
class Answer:
    """A whole (short) answer: status, content type, body and any extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def error(cls, status: int, message: str, *, api: bool) -> Answer:
        """The error answer the API would give: JSON under ``/api``, else one line of text."""
        if not api:
            return cls(status, "text/plain; charset=utf-8", f"{message}\n".encode())
        body = json.dumps({"id": ERROR_IDS.get(status, "error"), "message": message})
        extra = (("WWW-Authenticate", 'Bearer realm="corral"'),) if status == 401 else ()
        return cls(status, "application/json", body.encode() + b"\n", extra)

    def bytes(self) -> bytes:
        """The answer on the wire, framed by its length."""
        head = _head(self.status, self.content_type, self.headers)
        return head + b"Content-Length: %d\r\n\r\n" % len(self.body) + self.body


def _head(status: int, content_type: str, headers: tuple[tuple[str, str], ...]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Content-Type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def stream_head(content_type: str) -> bytes:
    """The head of a 200 streamed in chunks, which no proxy should buffer or cache."""
    extra = (("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no"))
    return _head(200, content_type, extra) + b"Transfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (``data`` must not be empty: that ends the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request head; None if the connection closed first or the head is malformed."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    request_line, *header_lines = raw.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    method, target, _version = parts
    headers: dict[str, str] = {}
    for line in header_lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers.setdefault(name.strip().lower(), value.strip())
    url = urlsplit(target)
    query: dict[str, str] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query.setdefault(name, value)
    return Request(method, unquote(url.path), query, headers)
