"""Backend connections: a pool of idle keep-alive connections, and round-robin balancing."""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import os
import socket
import time
from collections.abc import Callable

from corral.router.channel import Channel
from corral.router.deadlines import Deadlines
from corral.router.http1 import ResponseParser
from corral.router.table import AppRoute, Backend

__all__ = ["BackendConnection", "BackendPool", "RoundRobin"]


class BackendConnection:
    """One TCP connection to a web dyno."""

    __slots__ = ("_parser", "backend", "idle_since", "reader", "reused", "writer")

    def __init__(self, backend: Backend, channel: Channel) -> None:
        self.backend = backend
        #: One channel both reads and writes; two names keep the stream-like call sites.
        self.reader = self.writer = channel
        self.idle_since = 0.0
        #: Taken from the pool: it may have been closed by the dyno while idle.
        self.reused = False
        self._parser: ResponseParser | None = None

    def response_parser(self, *, head_request: bool) -> ResponseParser:
        """A parser for the next response: the last one's, when it ended cleanly."""
        parser = self._parser
        if parser is None or not parser.reuse(head_request=head_request):
            parser = self._parser = ResponseParser(head_request=head_request)
        return parser

    def usable(self) -> bool:
        """Still open, with nothing unexpected waiting to be read."""
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        """Close the connection without waiting."""
        self.writer.close()
        if self._parser is not None:
            self._parser.close()
            self._parser = None


class _ConnectLimit:
    """The deadline of one connect: cancels the task waiting for it."""

    __slots__ = ("cancelling", "expired", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.cancelling = task.cancelling()
        self.expired = False

    def expire(self) -> None:
        self.expired = True
        self.task.cancel()


class BackendPool:
    """Idle keep-alive connections per backend, reused newest first."""

    def __init__(
        self,
        *,
        max_idle: int = 64,
        idle_timeout: float = 30.0,
        deadlines: Deadlines | None = None,
    ) -> None:
        #: Where connect timeouts and the read deadlines of backend connections are kept.
        self.deadlines = deadlines if deadlines is not None else Deadlines()
        self._idle: dict[tuple[str, int], list[BackendConnection]] = {}
        #: The loop the pool's connections belong to, from the first connect until close.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_channel: Callable[[], Channel] = Channel  # type: ignore[assignment]
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout

    async def acquire(
        self, backend: Backend, *, timeout: float, first: bytes = b""
    ) -> BackendConnection:
        """A pooled connection to ``backend`` if one is usable, else a new one, with ``first``
        (the request, when it has no body) already on its way to the dyno.

        Raises ``OSError`` or ``TimeoutError`` when the backend cannot be reached.
        """
        idle = self._idle.get((backend.host, backend.port))
        if idle:
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                if conn.usable() and now - conn.idle_since < self._idle_timeout:
                    conn.reused = True
                    if first:
                        conn.writer.write(first)
                    return conn
                conn.close()
        return await self.connect(backend, timeout=timeout, first=first)

    async def connect(
        self, backend: Backend, *, timeout: float, first: bytes = b""
    ) -> BackendConnection:
        """A new connection to ``backend``, bypassing the pool, with ``first`` on its way.

        Raises ``TimeoutError`` after ``timeout`` seconds: a dyno that closes every
        connection costs one connect per request, so the timeout is one entry in
        :attr:`deadlines` rather than ``asyncio.timeout``'s context object and loop timer.
        """
        loop = self._loop
        if loop is None:  # asked once: asyncio's look-up makes a system call every time
            loop = self._loop = asyncio.get_running_loop()
            self._new_channel = functools.partial(Channel, loop, self.deadlines)
        task = asyncio.current_task(loop)
        assert task is not None
        limit = _ConnectLimit(task)
        slot = self.deadlines.add(limit, loop.time() + timeout)
        try:
            family = _family(backend.host) if first else None
            if family is None:
                _, channel = await loop.create_connection(
                    self._new_channel, backend.host, backend.port
                )
                if first:
                    channel.write(first)
            else:
                channel = await self._connect_sending(loop, family, backend, first)
        except asyncio.CancelledError:
            # Our own cancellation becomes a timeout; anyone else's goes on as it is.
            if limit.expired and task.uncancel() <= limit.cancelling:
                raise TimeoutError from None
            raise
        finally:
            self.deadlines.remove(limit, slot)
        return BackendConnection(backend, channel)

    async def _connect_sending(
        self, loop: asyncio.AbstractEventLoop, family: int, backend: Backend, first: bytes
    ) -> Channel:
        """Connect and send ``first`` before the loop's next turn where the kernel allows.

        A connect on loopback completes within the call, so the request can go out at once:
        a sync worker that accepted the connection starts on it without waiting for the
        router's loop to see the socket writable, take the task up again and then write.
        A dyno whose accept queue is full leaves the connect pending: then it is awaited.
        """
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            address = (backend.host, backend.port)
            code = sock.connect_ex(address)
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, os.strerror(code))
            try:
                sent = sock.send(first)
            except BlockingIOError:  # still connecting (the SYN waits): the loop waits for it
                await loop.sock_connect(sock, address)
                sent = 0
            _, channel = await loop.create_connection(self._new_channel, sock=sock)
        except BaseException:
            sock.close()
            raise
        if sent < len(first):
            channel.write(first[sent:])
        return channel

    def release(self, conn: BackendConnection) -> None:
        """Give back a connection whose last response was read completely."""
        if not conn.usable():
            conn.close()
            return
        idle = self._idle.setdefault((conn.backend.host, conn.backend.port), [])
        if len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def shed_idle(self) -> int:
        """Close every idle connection to free their descriptors; returns how many."""
        count = 0
        for idle in self._idle.values():
            count += len(idle)
            for conn in idle:
                conn.close()
            idle.clear()
        return count

    def close(self) -> None:
        """Close every idle connection (the pool may then serve another loop)."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        self._loop = None


def _family(host: str) -> int | None:
    """The address family of a numeric ``host``; None for a name (resolved by the loop)."""
    family = _FAMILIES.get(host)
    if family is None:
        try:
            version = ipaddress.ip_address(host).version
        except ValueError:
            return None
        family = _FAMILIES[host] = socket.AF_INET if version == 4 else socket.AF_INET6
    return family


# Backends are few and their hosts repeat (nearly always 127.0.0.1): parsed once each.
_FAMILIES: dict[str, int] = {}


class RoundRobin:
    """Round-robin position per app, kept across table reloads while its backends stay the same."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[tuple[Backend, ...], int]] = {}

    def order(self, route: AppRoute) -> list[Backend]:
        """The app's backends in the order to try them, starting at its next turn."""
        backends = route.backends
        if len(backends) == 1:  # nothing to rotate; as before, a later change restarts at 0
            self._state.pop(route.app, None)
            return [backends[0]]
        state = self._state.get(route.app)
        start = state[1] if state is not None and state[0] == backends else 0
        count = len(backends)
        self._state[route.app] = (backends, (start + 1) % count if count else 0)
        return [backends[(start + i) % count] for i in range(count)]
