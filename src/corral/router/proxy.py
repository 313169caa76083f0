"""The embedded router: an asyncio HTTP/1.1 reverse proxy that routes by Host to web dynos.

It reads routing from a table source (a callable returning the current
:class:`~corral.router.table.RouteTable`) and never touches the store.
"""

from __future__ import annotations

import asyncio
import errno
import resource
import ssl
import sys
from collections.abc import Callable
from typing import Any

from corral.router.acme_challenge import Front
from corral.router.admission import Admission, connection_budget
from corral.router.channel import Channel
from corral.router.connection import ClientConnection
from corral.router.context import RouterContext, Timeouts
from corral.router.deadlines import Deadlines
from corral.router.http1 import Limits
from corral.router.pool import BackendPool, RoundRobin
from corral.router.table import AppRoute, HostRoutes, RouteTable

__all__ = ["Router", "Timeouts"]

# What a connection over a limit is told, before it has sent a byte; then it is closed.
_REFUSALS = {
    reason: b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text)
    for reason, text in {
        "client": b"Too many connections from your address: close some, then try again.\n",
        "total": b"The router is at its connection limit: try again in a moment.\n",
    }.items()
}


def _print_log(app: str, line: str) -> None:
    sys.stdout.write(f"{app or '-'} router: {line}\n")


class Router:
    """Accepts client connections and proxies each request to a healthy web dyno of its app.

    ``log`` receives ``(app, line)`` once per request; ``app`` is ``""`` when the request
    named no known app (unknown host, malformed request).
    """

    def __init__(
        self,
        table_source: Callable[[], RouteTable],
        *,
        log: Callable[[str, str], None] = _print_log,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        proto: str = "http",
        forwarded_port: int | None = None,
        max_connections: int | None = None,
        body_dir: str | None = None,
        front: Front | None = None,
    ) -> None:
        self.table_source = table_source
        #: Host header -> route in the current table, kept across client connections.
        self.routes = HostRoutes(table_source)
        self.log = log
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or Limits()
        self.proto = proto.encode()
        self.proto_name = proto
        #: The port clients reached, for X-Forwarded-Port (default: the bound port).
        self.forwarded_port = forwarded_port
        #: Client connections in all (default: what the file limit leaves room for).
        self.max_connections = max_connections
        self.body_dir = body_dir
        #: With HTTPS on: challenges and redirects (HTTP), HSTS (TLS).
        self.front = front
        #: Every read deadline and connect timeout, kept with one loop timer.
        self.deadlines = Deadlines()
        self.pool = BackendPool(deadlines=self.deadlines)
        self.balancer = RoundRobin()
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        #: X-Forwarded-Port when the listening sockets share one port, found once at start.
        self.listen_port: bytes | None = None
        #: What each client connection is given, made once the listening port is known.
        self._context: RouterContext | None = None
        self.admission: Admission | None = None

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> int:
        """Start listening (over TLS with ``tls``); returns the bound port."""
        loop = asyncio.get_running_loop()
        file_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.admission = Admission(
            per_client=self.limits.client_connections,
            most=self.max_connections or connection_budget(file_limit),
            file_limit=file_limit,
            log=self.log,
            clock=loop.time,
            shed_pool=self.pool.shed_idle,
        )
        self._watch_accept_errors(loop)
        self._server = await loop.create_server(
            lambda: _ClientChannel(self, loop),
            host,
            port,
            backlog=1024,
            reuse_address=True,
            ssl=tls,
            ssl_handshake_timeout=None if tls is None else self.timeouts.header,
        )
        ports: set[int] = {sock.getsockname()[1] for sock in self._server.sockets}
        reached = self.forwarded_port or (ports.pop() if len(ports) == 1 else None)
        self.listen_port = None if reached is None else str(reached).encode()
        # Made before the loop's next turn, when the first client task can run.
        self._context = RouterContext(
            timeouts=self.timeouts,
            limits=self.limits,
            routes=self.routes,
            pool=self.pool,
            balancer=self.balancer,
            log=self.log,
            proto=self.proto,
            proto_name=self.proto_name,
            listen_port=self.listen_port,
            admission=self.admission,
            body_dir=self.body_dir,
            front=self.front,
        )
        return self._server.sockets[0].getsockname()[1]

    def _watch_accept_errors(self, loop: asyncio.AbstractEventLoop) -> None:
        """Say an accept that failed for want of descriptors as that, and free some.

        asyncio reports it to the loop's exception handler and accepts again a second
        later; libuv (uvloop) accepts and closes the waiting connections itself.
        """
        previous = loop.get_exception_handler()

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
                if self.admission is not None:
                    self.admission.out_of_files()
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handle)

    def route(self, host: str) -> AppRoute | None:
        """The route for a ``Host`` header in the current table, or None if it names no app."""
        return self.routes.lookup(host)

    async def serve(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        """Listen and serve until cancelled."""
        await self.start(host, port)
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop listening, drop client connections and close pooled backend connections."""
        if self._server is not None:
            self._server.close()
        clients = list(self._clients)
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        self._clients.clear()  # a task cancelled before it ran never removed itself
        self.pool.close()
        self.deadlines.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, channel: _ClientChannel) -> None:
        assert self._context is not None
        client = ClientConnection(self._context, channel, channel.address)
        try:
            await client.run()
        finally:
            channel.close()
            client.close()
            # Rather than a done callback per task: that is one more loop callback each.
            self._clients.discard(channel.task)  # type: ignore[arg-type]


class _ClientChannel(Channel):
    """A client connection: once made and admitted, a task serves its requests."""

    def __init__(self, router: Router, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop, router.deadlines)
        self.router = router
        self.task: asyncio.Task[None] | None = None
        self.address = ""
        self.admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.address = peer[0] if peer else ""
        admission = self.router.admission
        assert admission is not None
        refused = admission.admit(self.address)
        if refused:  # answered and closed before a task or a parser exists for it
            self.transport.write(_REFUSALS[refused])  # type: ignore[union-attr]
            transport.close()
            return
        self.admitted = True
        # The task first runs at the loop's next turn, after ``task`` is set.
        self.task = self.loop.create_task(self.router._accept(self))
        self.router._clients.add(self.task)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.admitted:
            self.admitted = False
            self.router.admission.leave(self.address, self)  # type: ignore[union-attr]
        super().connection_lost(exc)
