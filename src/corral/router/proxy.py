"""The embedded router: an asyncio HTTP/1.1 reverse proxy that routes by Host to web dynos.

It reads routing from a table source (a callable returning the current
:class:`~corral.router.table.RouteTable`) and never touches the store.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from corral.router.channel import Channel
from corral.router.connection import ClientConnection
from corral.router.context import RouterContext, Timeouts
from corral.router.deadlines import Deadlines
from corral.router.http1 import Limits
from corral.router.pool import BackendPool, RoundRobin
from corral.router.table import AppRoute, HostRoutes, RouteTable

__all__ = ["Router", "Timeouts"]


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

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start listening; returns the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ClientChannel(self, loop), host, port, backlog=1024, reuse_address=True
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
        )
        return self._server.sockets[0].getsockname()[1]

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
        client = ClientConnection(self._context, channel)
        try:
            await client.run()
        finally:
            channel.close()
            client.close()
            # Rather than a done callback per task: that is one more loop callback each.
            self._clients.discard(channel.task)  # type: ignore[arg-type]


class _ClientChannel(Channel):
    """A client connection: once made, a task serves its requests."""

    def __init__(self, router: Router, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop, router.deadlines)
        self.router = router
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # The task first runs at the loop's next turn, after ``task`` is set.
        self.task = self.loop.create_task(self.router._accept(self))
        self.router._clients.add(self.task)
