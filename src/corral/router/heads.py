"""The heads the router writes: requests to dynos, responses and error pages to clients.

Hop-by-hop headers are dropped and framing is re-declared, since the router re-frames
bodies on each side (a request body, read whole first, always goes with Content-Length);
``X-Forwarded-*``, ``X-Request-Id`` and ``Via`` are added.
"""

from __future__ import annotations

from corral.router.http1 import RequestHead, ResponseHead

__all__ = ["page_head_bytes", "request_head_bytes", "response_head_bytes"]


# Hop-by-hop headers and those the router rewrites; never copied through as they came.
_REQUEST_SKIP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"content-length",
        b"upgrade",
        # the router answered "100 Continue" itself and sends the body with the head
        b"expect",
        b"x-request-id",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"via",
    }
)
_RESPONSE_SKIP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"trailer",
        b"transfer-encoding",
        b"content-length",
        b"upgrade",
        b"x-request-id",
    }
)
_PROTECTED = frozenset({b"host", b"content-type", b"authorization", b"cookie"})
VIA = b"1.1 corral"


def _connection_tokens(head: RequestHead | ResponseHead) -> frozenset[bytes]:
    """Extra hop-by-hop headers a ``Connection`` header names (RFC 9110 7.6.1)."""
    tokens = head.connection
    return tokens - _PROTECTED if tokens else tokens


def request_head_bytes(
    head: RequestHead,
    *,
    request_id: bytes,
    client_ip: bytes,
    proto: bytes,
    port: bytes,
    length: bytes | None,
) -> bytes:
    """The head to send a backend: HTTP/1.1, hop-by-hop headers dropped, X-Forwarded-* added.

    ``length`` is the Content-Length of the body that follows, if any.
    """
    parts = [head.method, b" ", head.url, b" HTTP/1.1\r\n"]
    forwarded_for: list[bytes] = []
    via: list[bytes] = []
    upgrade = b""
    dropped = _connection_tokens(head)
    for name, value in head.headers:
        lname = name.lower()
        if lname in _REQUEST_SKIP:
            if lname == b"x-forwarded-for":
                forwarded_for.append(value.strip())
            elif lname == b"via":
                via.append(value.strip())
            elif lname == b"upgrade":
                upgrade = value
            continue
        if lname in dropped:
            continue
        parts += (name, b": ", value, b"\r\n")
    if head.upgrade:
        parts += (b"Connection: Upgrade\r\nUpgrade: ", upgrade, b"\r\n")
    elif length is not None:
        parts += (b"Content-Length: ", length, b"\r\n")
    forwarded_for.append(client_ip)
    via.append(VIA)
    parts += (
        b"X-Forwarded-For: ",
        b", ".join(forwarded_for),
        b"\r\nX-Forwarded-Proto: ",
        proto,
        b"\r\nX-Forwarded-Port: ",
        port,
        b"\r\nX-Request-Id: ",
        request_id,
        b"\r\nVia: ",
        b", ".join(via),
        b"\r\n\r\n",
    )
    return b"".join(parts)


def response_head_bytes(
    head: ResponseHead, *, request_id: bytes, framing: bytes, keep_alive: bool
) -> bytes:
    """The head to send the client; ``framing`` is its Content-Length/Transfer-Encoding line."""
    parts = [b"HTTP/1.1 %d %s\r\n" % (head.status, head.reason)]
    upgrade = head.status == 101
    dropped = _connection_tokens(head)
    for name, value in head.headers:
        lname = name.lower()
        if (lname in _RESPONSE_SKIP and not (upgrade and lname in (b"connection", b"upgrade"))) or (
            lname in dropped and not upgrade
        ):
            continue
        parts += (name, b": ", value, b"\r\n")
    parts += (framing, b"X-Request-Id: ", request_id, b"\r\nVia: 1.1 corral\r\n")
    if not keep_alive and not upgrade:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def page_head_bytes(
    status: int, reason: str, *, length: int, request_id: bytes, keep_alive: bool
) -> bytes:
    """The head of an error page the router writes itself."""
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason.encode()),
            b"Content-Type: text/html; charset=utf-8\r\nCache-Control: no-cache, no-store\r\n",
            b"Content-Length: %d\r\nX-Request-Id: %s\r\nVia: 1.1 corral\r\n" % (length, request_id),
            b"" if keep_alive else b"Connection: close\r\n",
            b"\r\n",
        )
    )
