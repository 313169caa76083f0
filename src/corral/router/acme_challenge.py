"""What the router answers itself with HTTPS on: ACME challenges, redirects, HSTS.

On the plain HTTP listener, ``/.well-known/acme-challenge/<token>`` is answered from the
file the certificate service wrote for that token (tokens are checked against the ACME
alphabet before any file is opened), for any host; every other request to a host that has
a certificate is redirected to HTTPS (308: the method and body stay). On the TLS listener,
the answers of a host that asked for it carry ``Strict-Transport-Security``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from corral.router.http1 import RequestHead
from corral.router.table import split_host
from corral.router.tls import CertIndex

__all__ = ["CHALLENGE_PREFIX", "HSTS_HEADER", "Front", "Reply", "valid_token"]

CHALLENGE_PREFIX = b"/.well-known/acme-challenge/"
#: RFC 8555 8.3: a token is base64url without padding (at least 128 bits of entropy).
_TOKEN = re.compile(rb"[A-Za-z0-9_-]{16,256}")
#: One year, subdomains left alone: an app's HSTS must not reach its neighbours.
HSTS_HEADER = b"Strict-Transport-Security: max-age=31536000\r\n"


def valid_token(token: str | bytes) -> bool:
    """Whether ``token`` is a plausible ACME token (safe as a file name)."""
    raw = token.encode("ascii", "replace") if isinstance(token, str) else token
    return _TOKEN.fullmatch(raw) is not None


@dataclass(frozen=True)
class Reply:
    """A whole answer the router writes itself."""

    status: int
    reason: bytes
    headers: bytes
    body: bytes

    def encode(self, *, request_id: bytes, keep_alive: bool, head_only: bool) -> bytes:
        """The bytes to send, head and (unless ``head_only``) body."""
        return b"".join(
            (
                b"HTTP/1.1 %d %s\r\n" % (self.status, self.reason),
                self.headers,
                b"Content-Length: %d\r\nX-Request-Id: %s\r\n" % (len(self.body), request_id),
                b"" if keep_alive else b"Connection: close\r\n",
                b"\r\n",
                b"" if head_only else self.body,
            )
        )


_NOT_FOUND = Reply(404, b"Not Found", b"Content-Type: text/plain\r\n", b"No such challenge.\n")


class Front:
    """The answers of one listener that come before routing (none for plain HTTP without TLS)."""

    def __init__(self, certs: CertIndex, *, tls: bool, https_port: int | None = None) -> None:
        self.certs = certs
        self.tls = tls
        #: The port in redirect locations (None: the default, 443).
        self.https_port = https_port

    def answer(self, head: RequestHead) -> Reply | None:
        """The router's own answer to ``head``, or None to route it to the app."""
        if self.tls:
            return None
        url = head.url
        if url.startswith(CHALLENGE_PREFIX):
            return self._challenge(url[len(CHALLENGE_PREFIX) :])
        host = split_host(head.host)
        if not self.certs.has(host):
            return None
        port = "" if self.https_port in (None, 443) else f":{self.https_port}"
        location = f"https://{host}{port}".encode() + (url if url.startswith(b"/") else b"/")
        return Reply(
            308,
            b"Permanent Redirect",
            b"Location: %s\r\nContent-Type: text/plain\r\n" % location,
            b"Moved to %s\n" % location,
        )

    def _challenge(self, token: bytes) -> Reply:
        if not valid_token(token):
            return _NOT_FOUND
        try:
            data = (self.certs.layout.challenges / token.decode("ascii")).read_bytes()
        except OSError:
            return _NOT_FOUND
        return Reply(200, b"OK", b"Content-Type: text/plain\r\n", data)

    def extra_head(self, host: str) -> bytes:
        """Headers added to the app's answers on this listener (HSTS when asked for)."""
        if self.tls and self.certs.hsts(split_host(host)):
            return HSTS_HEADER
        return b""
