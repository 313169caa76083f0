"""What the router hands down to each client connection: a frozen bundle for the hot path.

The :class:`~corral.router.proxy.Router` builds one :class:`RouterContext` when it starts
listening; client connections and forwarding read timeouts, limits, the backend pool and
the balancer from it, and never see the router itself, so data flows one way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from corral.router.acme_challenge import Front
from corral.router.admission import Admission
from corral.router.http1 import Limits
from corral.router.pool import BackendPool, RoundRobin
from corral.router.table import HostRoutes

__all__ = ["RouterContext", "Timeouts"]


@dataclass(frozen=True)
class Timeouts:
    """How long the router waits, in seconds."""

    #: For the backend to start its response once the request is sent (H12).
    request: float = 30.0
    #: For a client to finish sending a request head.
    header: float = 10.0
    #: For the next request on an idle keep-alive client connection.
    keepalive: float = 75.0
    #: Without a byte while streaming a body, either way.
    idle: float = 55.0
    #: To connect to a backend before trying the next one.
    connect: float = 5.0
    #: For a client to send a whole request body once its head is in (408 after).
    body: float = 600.0


@dataclass(frozen=True, slots=True)
class RouterContext:
    """Everything a client connection needs from the router, fixed while it listens."""

    timeouts: Timeouts
    limits: Limits
    #: Host header -> route in the current table.
    routes: HostRoutes
    pool: BackendPool
    balancer: RoundRobin
    #: Receives ``(app, line)`` once per request; ``app`` is ``""`` when none was named.
    log: Callable[[str, str], None]
    #: X-Forwarded-Proto, as sent and as logged.
    proto: bytes
    proto_name: str
    #: X-Forwarded-Port when every listening socket shares one port, else None.
    listen_port: bytes | None
    #: Counts client connections, keeps the register of idle ones, sheds them.
    admission: Admission
    #: Where request bodies too large for memory are spooled (None: the system's temp dir).
    body_dir: str | None
    #: The answers that come before routing with HTTPS on (challenges, redirects), if any.
    front: Front | None = None
