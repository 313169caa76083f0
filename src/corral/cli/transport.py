"""The CLI's HTTP/1.1 transport: one request per connection, on a plain socket (TLS verified).

Why not httpx or ``http.client``: importing httpx took longer than the rest of ``corral apps``
together, and ``http.client`` pulls in the ``email`` package (~20 ms) to parse headers. The API
is the user's own server, spoken to in a handful of request shapes, so this is small: a request
with a length-delimited body, an answer framed by ``Content-Length``, chunked encoding or the
connection's end, read as it arrives. TLS checks the certificate and host name against the
CAs httpx trusted: ``$SSL_CERT_FILE`` or ``$SSL_CERT_DIR`` when set, else certifi's bundle (the
system's store if certifi is missing). Proxies from the environment are not used: the CLI
connects to the server it was given.
"""

from __future__ import annotations

import codecs
import json
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlencode, urlsplit

from corral import __version__

if TYPE_CHECKING:
    import ssl

__all__ = ["Response", "TransportError", "send", "tls_context"]

#: The longest status or header line, and the most header lines, taken from a server.
_MAX_LINE = 65536
_MAX_HEADERS = 200
#: Who is asking, in the server's access log.
_USER_AGENT = f"corral/{__version__}"
#: How much one read asks for; a streamed answer is handed on as soon as any of it arrives.
_CHUNK = 65536


class TransportError(Exception):
    """The server could not be reached, or the connection broke; ``reason`` says how."""

    def __init__(self, reason: str, *, connecting: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        #: True when no request reached the server (refused, unknown host, TLS refused).
        self.connecting = connecting


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _query_value(value: object) -> str:
    # as httpx wrote them, which the API's parameters were written against
    if value is True or value is False:
        return "true" if value else "false"
    return "" if value is None else str(value)


@dataclass
class Response:
    """An answer whose body is read on demand (:meth:`read`, :meth:`iter_lines`, ...)."""

    status_code: int
    reason_phrase: str
    #: Header names in lower case; a repeated header keeps its last value.
    headers: dict[str, str]
    method: str
    #: The request's path, without the query (for error messages).
    path: str
    #: The connection the body is read from; None when the body was given (``_content``).
    _reader: _Reader | None = field(default=None, repr=False)
    _content: bytes | None = field(default=None, repr=False)

    @property
    def is_success(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status_code < 300

    def iter_bytes(self) -> Iterator[bytes]:
        """The body's bytes as they arrive."""
        if self._content is not None or self._reader is None:
            yield self._content or b""
            return
        yield from self._reader.body(self.method, self.status_code, self.headers)

    def read(self) -> bytes:
        """The whole body."""
        if self._content is None:
            self._content = b"".join(self.iter_bytes())
        return self._content

    def close(self) -> None:
        """Close the connection (reading the whole body closes it too)."""
        if self._reader is not None:
            self._reader.close()

    @property
    def encoding(self) -> str:
        """The charset the Content-Type names, else UTF-8."""
        for param in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.lower() == "charset" and value.strip('"'):
                try:
                    return codecs.lookup(value.strip('"')).name
                except LookupError:
                    break
        return "utf-8"

    @property
    def text(self) -> str:
        """The whole body as text (undecodable bytes replaced)."""
        return self.read().decode(self.encoding, errors="replace")

    def json(self) -> Any:
        """The whole body parsed as JSON."""
        return json.loads(self.read())

    def iter_lines(self) -> Iterator[str]:
        """The body's text lines as they arrive, without their endings (``str.splitlines``)."""
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        pending = ""
        for chunk in self.iter_bytes():
            lines = (pending + decoder.decode(chunk)).splitlines(keepends=True)
            pending = ""
            # the last line may be incomplete, and a "\r" may be half of a "\r\n"
            if lines and (lines[-1].endswith("\r") or lines[-1].splitlines() == [lines[-1]]):
                pending = lines.pop()
            yield from (line.splitlines()[0] for line in lines)
        yield from (pending + decoder.decode(b"", final=True)).splitlines()


class _Reader:
    """The answer's side of the connection, with the framing errors named for a user."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def line(self) -> bytes:
        line = self.file.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise TransportError("the server sent a header line too long", connecting=False)
        if not line.endswith(b"\n"):
            raise TransportError("the server closed the connection mid-answer", connecting=False)
        return line

    def some(self, limit: int) -> bytes:
        data = self.file.read1(min(limit, _CHUNK))
        if not data:
            raise TransportError("the server closed the connection mid-answer", connecting=False)
        return data

    def head(self) -> tuple[int, str, dict[str, str]]:
        while True:
            version, _, rest = self.line().decode("latin-1").strip().partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise TransportError("the server's answer is not HTTP", connecting=False)
            headers: dict[str, str] = {}
            for _ in range(_MAX_HEADERS):
                line = self.line().decode("latin-1")
                if not line.strip():
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            else:
                raise TransportError("the server sent too many headers", connecting=False)
            # 1xx answers (100 Continue, 103 Early Hints) are interim: the real one follows
            if not 100 <= int(code) < 200 or int(code) == 101:
                return int(code), reason.strip(), headers

    def body(self, method: str, status: int, headers: Mapping[str, str]) -> Iterator[bytes]:
        try:
            if method == "HEAD" or status in (204, 304):
                return
            if "chunked" in headers.get("transfer-encoding", "").lower():
                yield from self._chunked()
            elif (length := headers.get("content-length", "")).isdigit():
                remaining = int(length)
                while remaining:
                    data = self.some(remaining)
                    remaining -= len(data)
                    yield data
            else:
                while data := self.file.read1(_CHUNK):
                    yield data
        except OSError as exc:
            raise TransportError(_reason(exc), connecting=False) from None
        finally:
            self.close()

    def _chunked(self) -> Iterator[bytes]:
        while True:
            size_text = self.line().split(b";")[0].strip()
            if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
                raise TransportError("the server sent a malformed chunk", connecting=False)
            size = int(size_text, 16)
            if size == 0:
                while self.line().strip():  # trailers, unused
                    pass
                return
            while size:
                data = self.some(size)
                size -= len(data)
                yield data
            self.line()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def tls_context() -> ssl.SSLContext:
    import ssl  # only for https: it is a good part of the import time this saves

    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _connect(server: str, *, timeout: float | None, connect_timeout: float) -> socket.socket:
    url = urlsplit(server)
    secure = url.scheme == "https"
    host = url.hostname or "localhost"
    try:
        sock = socket.create_connection(
            (host, url.port or (443 if secure else 80)), connect_timeout
        )
        if secure:
            try:
                sock = tls_context().wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        sock.settimeout(timeout)
    except (OSError, ValueError) as exc:
        raise TransportError(_reason(exc), connecting=True) from None
    return sock


def _body_length(body: bytes | BinaryIO) -> int:
    if isinstance(body, bytes):
        return len(body)
    return os.fstat(body.fileno()).st_size - body.tell()


def send(
    server: str,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str],
    params: Mapping[str, object] | None = None,
    body: bytes | BinaryIO | None = None,
    timeout: float | None,
    connect_timeout: float,
) -> Response:
    """Send one request to ``server`` (its URL, perhaps with a path prefix); the answer's head.

    ``timeout`` bounds each wait for the server once connected (None: wait as long as it
    takes, for a streamed answer). The body is read from the returned :class:`Response`.
    """
    url = urlsplit(server)
    target = url.path.rstrip("/") + path
    if params:
        target += "?" + urlencode([(key, _query_value(value)) for key, value in params.items()])
    lines = [f"{method} {target} HTTP/1.1", f"Host: {url.netloc.rpartition('@')[2]}"]
    fields = {"User-Agent": _USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
    fields |= {"Connection": "close", **headers}
    if body is not None:
        fields["Content-Length"] = str(_body_length(body))
    for name, value in fields.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} holds a line break")
        lines.append(f"{name}: {value}")
    sock = _connect(server, timeout=timeout, connect_timeout=connect_timeout)
    reader = _Reader(sock)
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if isinstance(body, bytes):
            sock.sendall(body)
        elif body is not None:
            sock.sendfile(body, offset=body.tell())
        status, reason, answer_headers = reader.head()
    except OSError as exc:
        reader.close()
        raise TransportError(_reason(exc), connecting=False) from None
    except BaseException:
        reader.close()
        raise
    return Response(
        status_code=status,
        reason_phrase=reason,
        headers=answer_headers,
        method=method,
        path=urlsplit(target).path,
        _reader=reader,
    )
