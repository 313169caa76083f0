"""What the router knows about one request while serving it, for its log line."""

from __future__ import annotations

from corral.router.http1 import RequestHead

__all__ = ["READ_SIZE", "ClientGone", "Exchange"]

#: The most bytes read from a socket at once: the largest piece of a body held in memory.
READ_SIZE = 65536


class ClientGone(Exception):
    """The client closed its connection (or went quiet) in the middle of a request."""


class Exchange:
    """What the log line says about one request; filled in as it is served."""

    __slots__ = (
        "app",
        "connect",
        "dyno",
        "extra_head",
        "failure",
        "head",
        "request_id",
        "sent",
        "service_start",
        "started",
        "status",
    )

    def __init__(self, head: RequestHead, request_id: bytes, started: float) -> None:
        self.head = head
        self.request_id = request_id
        self.started = started
        self.app = ""
        self.dyno = ""
        self.connect = 0.0
        self.service_start = started
        self.failure = ""
        self.status = 0
        #: Bytes written to the client for this request, head included.
        self.sent = 0
        #: Header lines the router adds to the app's answer (HSTS over HTTPS).
        self.extra_head = b""
