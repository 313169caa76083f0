"""The client side of one connection, as serving and forwarding a request read it.

A :class:`ClientStream` owns the client's channel and request parser and reads heads and
body pieces with the router's deadlines; the client connection reads heads and bodies
from it, and :func:`~corral.router.forward.forward` streams the response back.
"""

from __future__ import annotations

from typing import Protocol

from corral.router.channel import Channel
from corral.router.context import Timeouts
from corral.router.exchange import ClientGone
from corral.router.http1 import BODY, END, HEAD, BadRequest, Limits, RequestHead, RequestParser
from corral.router.pages import logfmt_value

__all__ = ["ClientStream", "IdleClients"]

#: How long a connection closed with part of a request unread keeps reading (and dropping)
#: it, so the client sees the router's answer rather than a reset, and how much it drops.
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 * 1024 * 1024


class IdleClients(Protocol):
    """Where a connection waiting for its next request says so, to be shed first."""

    def add(self, channel: Channel) -> None: ...

    def discard(self, channel: Channel) -> None: ...


# Client addresses repeat (every connection from one host): text, bytes and logfmt.
_CLIENT_IPS: dict[str, tuple[str, bytes, str]] = {}


def _client_ip(address: str) -> tuple[str, bytes, str]:
    known = _CLIENT_IPS.get(address)
    if known is None:
        text = str(address)
        known = (text, text.encode(), logfmt_value(text, quoted=True))
        if len(_CLIENT_IPS) >= 1024:
            _CLIENT_IPS.clear()
        _CLIENT_IPS[address] = known
    return known


class ClientStream:
    """One client's channel and request parser, its address, and the port it reached."""

    __slots__ = (
        "body_done",
        "channel",
        "idle",
        "ip",
        "ip_bytes",
        "ip_logfmt",
        "loop",
        "parser",
        "port",
        "timeouts",
    )

    def __init__(
        self,
        channel: Channel,
        timeouts: Timeouts,
        limits: Limits,
        listen_port: bytes | None,
        *,
        ip: str,
        idle: IdleClients,
    ) -> None:
        self.channel = channel
        self.loop = channel.loop
        self.timeouts = timeouts
        self.parser = RequestParser(limits)
        self.ip, self.ip_bytes, self.ip_logfmt = _client_ip(ip)
        #: Told while this connection waits for a next request (a keep-alive it may shed).
        self.idle = idle
        port = listen_port
        if port is None:  # listening on several ports: the one this client reached
            port = str(channel.get_extra_info("sockname")[1]).encode()
        #: For X-Forwarded-Port.
        self.port = port
        #: The current request's body has been read completely from the client.
        self.body_done = True

    async def next_head(self, first: bool) -> RequestHead | None:
        """The next request head, or None when the client closed between requests.

        The first head must arrive within the header timeout; a later one may wait for the
        keep-alive timeout, until its first byte starts the header timeout.
        """
        parser = self.parser
        events = parser.events
        deadline = self.loop.time() + self.timeouts.header if first else None
        while True:
            while events:
                kind, payload = events.popleft()
                if kind == HEAD:
                    assert isinstance(payload, RequestHead)
                    self.body_done = not payload.has_body
                    return payload
            if parser.in_head and deadline is None:
                deadline = self.loop.time() + self.timeouts.header
            if deadline is not None:
                data = await self.channel.read(deadline)
            else:
                idle = self.idle
                idle.add(self.channel)
                try:
                    data = await self.channel.read(self.loop.time() + self.timeouts.keepalive)
                finally:
                    idle.discard(self.channel)
            if not data:
                return None
            parser.feed(data)

    async def next_body_event(self, deadline: float) -> tuple[int, bytes]:
        """The next piece of the current request's body, or ``(END, b"")`` after the last.

        A client that sends nothing for the idle timeout, or not all of its body by
        ``deadline`` (a ``loop.time()``), is answered 408.
        """
        events = self.parser.events
        while not events:
            now = self.loop.time()
            try:
                data = await self.channel.read(min(now + self.timeouts.idle, deadline))
            except TimeoutError:
                if self.loop.time() >= deadline:
                    reason = f"The request body did not arrive within {self.timeouts.body:g} s"
                else:
                    reason = f"Nothing of the request body arrived for {self.timeouts.idle:g} s"
                raise BadRequest(408, reason) from None
            except ConnectionError as exc:
                # Said as the client's doing, so it is never mistaken for the dyno's.
                raise ClientGone("client reset during the request body") from exc
            if not data:
                raise ClientGone("client closed during the request body")
            self.parser.feed(data)
        kind, payload = events.popleft()
        if kind == BODY:
            assert isinstance(payload, bytes)
            return BODY, payload
        if kind == END:
            self.body_done = True
            return END, b""
        raise BadRequest(400, "Malformed request body")

    async def linger(self) -> None:
        """Before closing with part of a request unread: stop writing, drop what still comes.

        Closing a socket with unread bytes resets it, and a reset can destroy the answer the
        client has not read yet (a 413 sent while it uploads); this waits a bounded time.
        """
        channel = self.channel
        if channel.is_closing() or channel.at_eof():
            return
        if channel.can_write_eof():
            channel.write_eof()
        deadline = self.loop.time() + LINGER_SECONDS
        dropped = 0
        try:
            while dropped < LINGER_BYTES and (data := await channel.read(deadline)):
                dropped += len(data)
        except (TimeoutError, ConnectionError):
            pass

    def close(self) -> None:
        """Let go of the parser (and httptools' reference cycle) once the client is gone."""
        self.parser.close()
