"""HTTP/1.1 framing for the router: httptools parsers that queue events, and head writers.

Both parsers turn bytes into an ordered queue of events (a head, body pieces, the end of a
message, an upgrade), so the proxy can stream bodies without ever holding a whole one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import httptools

__all__ = [
    "BODY",
    "END",
    "HEAD",
    "UPGRADE",
    "BadRequest",
    "BadResponse",
    "Limits",
    "RequestHead",
    "RequestParser",
    "ResponseHead",
    "ResponseParser",
    "chunk",
]

# Event kinds: (kind, payload) tuples in a parser's ``events`` deque.
HEAD, BODY, END, UPGRADE = 0, 1, 2, 3

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Limits:
    """What the router accepts from a client: head and body sizes, connections per address."""

    max_url: int = 8192
    max_header_bytes: int = 16384
    max_headers: int = 100
    #: The largest request body, in bytes (413 beyond): above the API's own upload limit.
    max_body: int = 512 * 1024 * 1024
    #: A body is held in memory up to this many bytes, past them in a temporary file.
    body_in_memory: int = 64 * 1024
    #: Connections one client address may hold open at once (0: no cap).
    client_connections: int = 256


class BadRequest(Exception):
    """The client sent something the router refuses; ``status`` is what it answers."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BadResponse(Exception):
    """The backend sent bytes that are not a valid HTTP response."""


@dataclass(slots=True)
class RequestHead:
    """A parsed request line and headers, as the client sent them."""

    method: bytes
    url: bytes
    version: str
    headers: Headers
    keep_alive: bool
    upgrade: bool
    has_body: bool
    chunked: bool
    content_length: bytes | None
    host: str
    request_id: bytes | None
    #: The lower-cased tokens of its ``Connection`` headers.
    connection: frozenset[bytes] = frozenset()


@dataclass(slots=True)
class ResponseHead:
    """A parsed status line and headers, as the backend sent them."""

    status: int
    reason: bytes
    headers: Headers
    keep_alive: bool
    #: The body has no length and ends when the backend closes the connection.
    close_delimited: bool
    chunked: bool
    content_length: bytes | None
    #: The lower-cased tokens of its ``Connection`` headers.
    connection: frozenset[bytes] = frozenset()
    #: Transfer codings applied before (or instead of) chunked, e.g. ``b"gzip"``: passed on.
    codings: bytes = b""


_NO_TOKENS: frozenset[bytes] = frozenset()


# The headers _Scan looks at, each to the branch that reads it.
_HOST, _LENGTH, _ENCODING, _CONNECTION, _REQUEST_ID = range(5)
_SCANNED = {
    b"host": _HOST,
    b"content-length": _LENGTH,
    b"transfer-encoding": _ENCODING,
    b"connection": _CONNECTION,
    b"x-request-id": _REQUEST_ID,
}


class _Scan:
    """What one pass over a head's headers finds (the router looks at each header once)."""

    __slots__ = (
        "chunked",
        "codings",
        "conflicting_lengths",
        "connection",
        "duplicate_host",
        "host",
        "length",
        "request_id",
    )

    def __init__(self, headers: Headers) -> None:
        chunked = conflicting = duplicate_host = False
        length = request_id = None
        host: str | None = None
        encodings: list[bytes] | None = None
        connection: list[bytes] | None = None
        scanned = _SCANNED
        for name, value in headers:
            kind = scanned.get(name.lower())
            if kind is None:
                continue
            if kind == _HOST:
                duplicate_host = duplicate_host or host is not None
                host = value.decode("latin-1")
            elif kind == _LENGTH:
                value = value.strip()
                conflicting = conflicting or (length is not None and value != length)
                length = value
            elif kind == _ENCODING:
                tokens = [t.strip().lower() for t in value.split(b",")]
                encodings = tokens if encodings is None else encodings + tokens
            elif kind == _CONNECTION:
                if b"," in value:
                    tokens = [t.strip().lower() for t in value.split(b",")]
                else:  # the usual one token ("close", "keep-alive", "Upgrade")
                    tokens = [value.strip().lower()]
                connection = tokens if connection is None else connection + tokens
            else:
                request_id = value
        codings = b""
        if encodings is not None:
            chunked = encodings[-1] == b"chunked"
            rest = [t for t in (encodings[:-1] if chunked else encodings) if t]
            codings = b", ".join(rest)
        self.chunked = chunked
        #: Every coding but a final "chunked" (``b""`` for plain chunked or no header).
        self.codings = codings
        self.length = length
        self.conflicting_lengths = conflicting
        self.duplicate_host = duplicate_host
        self.host = host or ""
        self.request_id = request_id
        self.connection = frozenset(connection) if connection else _NO_TOKENS


class RequestParser:
    """Feeds client bytes to httptools, enforcing head limits and queueing events."""

    def __init__(self, limits: Limits) -> None:
        self.events: deque[tuple[int, object]] = deque()
        self._limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._in_head = False
        self._head_bytes = 0
        self._reset_head()

    def _reset_head(self) -> None:
        self._url = b""
        self._headers: Headers = []
        self._header_bytes = 0

    def close(self) -> None:
        """Drop the httptools parser, which refers back to this one, once the connection is done.

        Without this the pair is a reference cycle that only the garbage collector frees.
        """
        self._parser = None  # type: ignore[assignment]

    @property
    def in_head(self) -> bool:
        """Part of a request head has arrived, but not all of it."""
        return self._in_head

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raise :class:`BadRequest` with the status to answer if it is bad."""
        counting = self._in_head
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.events.append((UPGRADE, data[exc.args[0] :]))
            return
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, BadRequest):
                raise exc.__context__ from None
            raise
        except httptools.HttpParserError as exc:
            raise BadRequest(400, str(exc) or "Malformed request") from None
        if self._in_head:
            # A head still arriving: bound it before httptools has handed us its pieces.
            self._head_bytes += len(data) if counting else 0
            if not self._headers and len(self._url) > self._limits.max_url:
                raise BadRequest(414, "URI Too Long")
            if self._head_bytes - len(self._url) > self._limits.max_header_bytes + 1024:
                raise BadRequest(431, "Request Header Fields Too Large")

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._reset_head()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limits.max_url:
            raise BadRequest(414, "URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            # A chunked body's trailer: dropped, never merged into the head sent on.
            return
        self._headers.append((name, value))
        self._header_bytes += len(name) + len(value) + 4
        if (
            len(self._headers) > self._limits.max_headers
            or self._header_bytes > self._limits.max_header_bytes
        ):
            raise BadRequest(431, "Request Header Fields Too Large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        scan = _Scan(self._headers)
        if scan.conflicting_lengths:  # httptools refuses these too; say so ourselves regardless
            raise BadRequest(400, "Conflicting Content-Length")
        if scan.duplicate_host:  # two hosts: which app is meant is anyone's guess
            raise BadRequest(400, "The request has more than one Host header")
        if scan.codings:  # the router would drop the coding when it frames the body anew
            coding = scan.codings.decode("latin-1")
            raise BadRequest(
                501,
                f"Transfer-Encoding {coding!r} is not supported; send the body plain, "
                "with Content-Length or Transfer-Encoding: chunked",
            )
        chunked, length = scan.chunked, scan.length
        upgrade = parser.should_upgrade()
        # Positional, in field order: keyword arguments cost more per request.
        head = RequestHead(
            parser.get_method(),
            self._url,
            parser.get_http_version(),
            self._headers,
            parser.should_keep_alive(),
            upgrade,
            not upgrade and (chunked or (length not in (None, b"0"))),
            chunked,
            length,
            scan.host,
            scan.request_id,
            scan.connection,
        )
        self.events.append((HEAD, head))

    def on_body(self, body: bytes) -> None:
        self.events.append((BODY, body))

    def on_message_complete(self) -> None:
        self.events.append((END, None))


class ResponseParser:
    """Feeds backend bytes to httptools for one exchange (its 1xx interim responses too)."""

    def __init__(self, *, head_request: bool) -> None:
        self.events: deque[tuple[int, object]] = deque()
        self._head_request = head_request
        self._parser = httptools.HttpResponseParser(self)
        self._reason = b""
        self._headers: Headers = []
        self._close_delimited = False
        self._status = 0
        #: The final response is complete; whatever arrives later is a protocol error.
        self.done = False
        #: Some response bytes arrived (so a retry on another connection is unsafe).
        self.started = False

    def reuse(self, *, head_request: bool) -> bool:
        """Start over for the next exchange on the same connection; False if it cannot.

        Only after a response httptools itself saw end (not a HEAD response's, whose body
        it still expects), so its state is back at the start of a message.
        """
        if not self.done or self._head_request or self._close_delimited or self.events:
            return False
        self._head_request = head_request
        self._status = 0
        self.done = self.started = False
        return True

    def close(self) -> None:
        """Drop the httptools parser, which refers back to this one, once the connection is done.

        Without this the pair is a reference cycle that only the garbage collector frees: a
        dyno that closes every connection (``gunicorn -k sync``) would leave one per request.
        """
        self._parser = None  # type: ignore[assignment]

    def feed(self, data: bytes) -> None:
        """Parse ``data`` from the backend; raise :class:`BadResponse` if it is not HTTP."""
        self.started = True
        if self.done:
            raise BadResponse("data after the end of the response")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.events.append((UPGRADE, data[exc.args[0] :]))
        except httptools.HttpParserError as exc:
            raise BadResponse(str(exc)) from None

    def feed_eof(self) -> bool:
        """The backend closed; True if that ends the response (close-delimited body)."""
        if self._close_delimited and not self.done:
            self.done = True
            self.events.append((END, None))
            return True
        return self.done

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._reason = b""
        self._headers = []

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = self._status = parser.get_status_code()
        scan = _Scan(self._headers)
        chunked, length = scan.chunked, scan.length
        bodyless = status < 200 or status in (204, 304) or self._head_request
        close_delimited = not bodyless and not chunked and length is None
        self._close_delimited = close_delimited
        head = ResponseHead(
            status,
            self._reason,
            self._headers,
            parser.should_keep_alive() and not close_delimited,
            close_delimited,
            chunked,
            length,
            scan.connection,
            scan.codings,
        )
        self.events.append((HEAD, head))
        if self._head_request and status >= 200:
            # httptools cannot be told a HEAD response has no body: end it here instead.
            self.done = True
            self.events.append((END, None))

    def on_body(self, body: bytes) -> None:
        if not self.done:
            self.events.append((BODY, body))

    def on_message_complete(self) -> None:
        if self.done:
            return
        if self._status >= 200:  # interim (1xx) responses end too, but the exchange goes on
            self.done = True
        self.events.append((END, None))


def chunk(data: bytes) -> bytes:
    """``data`` framed as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)
