"""One client connection: read requests (keep-alive, pipelined), route each, answer errors.

Forwarding a routed request to a dyno lives in :mod:`corral.router.forward`, which says
how it went with an :class:`~corral.router.forward.Outcome`; this module acts on it:
the router's failure pages, the log line, and whether the connection serves another request.
"""

from __future__ import annotations

import os
import re

from corral.redact import redact_url
from corral.router.acme_challenge import Reply
from corral.router.body import read_body
from corral.router.channel import Channel
from corral.router.client import ClientStream
from corral.router.context import RouterContext
from corral.router.exchange import ClientGone, Exchange
from corral.router.forward import forward, tunnel
from corral.router.heads import page_head_bytes
from corral.router.http1 import BadRequest, RequestHead
from corral.router.pages import FAILURES, logfmt_value, no_backend_failure, render_page

__all__ = ["ClientConnection"]

# Heroku's rule for a client-supplied request id: 20 to 200 of these characters.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9+/=_.:-]{20,200}")
_BAD_INPUT = {400: "bad_request", 408: "body_timeout", 413: "body_too_large"}
_BAD_INPUT |= {414: "uri_too_long", 431: "headers_too_large", 501: "not_implemented"}
_REASONS = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS |= {408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long"}
_REASONS |= {431: "Request Header Fields Too Large", 501: "Not Implemented"}
_REASONS |= {503: "Service Unavailable"}


class _RequestIds:
    """Random (version 4) UUIDs in hex, made 256 at a time from one ``os.urandom`` call."""

    def __init__(self) -> None:
        self._hex = b""
        self._at = 0

    def __call__(self) -> bytes:
        at = self._at
        if at >= len(self._hex):
            self._refill()
            at = 0
        self._at = at + 32
        return self._hex[at : at + 32]

    def _refill(self) -> None:
        raw = bytearray(os.urandom(16 * 256))
        for at in range(0, len(raw), 16):
            raw[at + 6] = raw[at + 6] & 0x0F | 0x40  # version 4
            raw[at + 8] = raw[at + 8] & 0x3F | 0x80  # RFC 4122 variant
        self._hex = raw.hex().encode()


_new_request_id = _RequestIds()

# Methods, hosts and dyno names repeat from request to request: their logfmt is kept, up
# to a bound, since any client can send new ones.
_LOGFMT_KEPT: dict[str, str] = {}


def _logfmt_cached(text: str) -> str:
    value = _LOGFMT_KEPT.get(text)
    if value is None:
        value = logfmt_value(text)
        if len(_LOGFMT_KEPT) < 1024:
            _LOGFMT_KEPT[text] = value
    return value


class ClientConnection:
    """Serves the requests of one client connection, one after another."""

    __slots__ = ("client", "ctx", "loop", "writer")

    def __init__(self, ctx: RouterContext, channel: Channel, ip: str) -> None:
        self.ctx = ctx
        self.client = ClientStream(
            channel, ctx.timeouts, ctx.limits, ctx.listen_port, ip=ip, idle=ctx.admission
        )
        self.writer = channel
        self.loop = channel.loop

    async def run(self) -> None:
        """Serve requests until the client closes, errs, or either side asks to close.

        A connection closed with part of a request unread lingers a moment first, so the
        client reads the answer (a 413 while it uploads) instead of a reset.
        """
        await self._serve_all()
        if not self.client.body_done:
            await self.client.linger()

    async def _serve_all(self) -> None:
        client = self.client
        first = True
        while True:
            try:
                head = await client.next_head(first)
            except BadRequest as exc:
                await self._refuse(exc)
                return
            except (TimeoutError, ConnectionError):
                return
            if head is None:
                return
            first = False
            exchange = Exchange(head, self._request_id(head), self.loop.time())
            try:
                keep_alive = await self._serve(exchange)
            except BadRequest as exc:  # e.g. a malformed chunked body, read while forwarding
                if exchange.sent == 0:
                    await self._refuse(exc, exchange)
                return
            except (ClientGone, TimeoutError, ConnectionError):
                exchange.failure = "client_gone"
                exchange.status = exchange.status or 499
                self.log_exchange(exchange)
                return
            if not keep_alive:
                return

    def close(self) -> None:
        """Let go of what the connection holds once it is done (the channel is the caller's)."""
        self.client.close()

    def _request_id(self, head: RequestHead) -> bytes:
        rid = head.request_id
        if rid is not None and _SANE_REQUEST_ID.fullmatch(rid):
            return rid
        return _new_request_id()

    async def _serve(self, exchange: Exchange) -> bool:
        """Route one request; True if the connection stays open for the next."""
        head = exchange.head
        if head.method == b"CONNECT":
            return await self.fail(exchange, "method", reason="CONNECT")
        front = self.ctx.front
        if front is not None:
            reply = front.answer(head)
            if reply is not None:
                return await self._reply(exchange, reply)
            exchange.extra_head = front.extra_head(head.host)
        route = self.ctx.routes.lookup(head.host)
        if route is None:
            return await self.fail(exchange, "no_app", host=head.host)
        exchange.app = route.app
        if route.maintenance:
            return await self.fail(exchange, "maintenance")
        if not route.backends:
            failure = no_backend_failure(crashed=route.crashed, has_web=route.has_web)
            return await self.fail(exchange, failure)
        if route.streams:  # the platform's: its long-lived requests go to their own service
            route = route.for_request(head.method, head.url)
        body = None
        if head.has_body:  # read whole before a dyno is involved: see corral.router.body
            body = await read_body(self.client, head, self.ctx.limits, self.ctx.body_dir)
        try:
            outcome = await forward(self.ctx, self.client, exchange, route, body)
        finally:
            if body is not None:
                body.close()
        if outcome.failure:
            if outcome.failure == "no_files":
                self.ctx.admission.out_of_files()
            return await self.fail(exchange, outcome.failure)
        self.log_exchange(exchange)
        if outcome.upgraded is not None:
            await tunnel(self.client, outcome.upgraded)
            return False
        return outcome.keep_alive

    async def _reply(self, exchange: Exchange, reply: Reply) -> bool:
        """Write the router's own answer (a challenge, a redirect); True if the connection stays."""
        route = self.ctx.routes.lookup(exchange.head.host)
        exchange.app = route.app if route is not None else ""
        exchange.status = reply.status
        keep_alive = exchange.head.keep_alive and self.client.body_done
        data = reply.encode(
            request_id=exchange.request_id,
            keep_alive=keep_alive,
            head_only=exchange.head.method == b"HEAD",
        )
        exchange.sent += len(data)
        self.writer.write(data)
        self.log_exchange(exchange)
        await self.writer.drain()
        return keep_alive

    async def fail(self, exchange: Exchange, name: str, **values: str) -> bool:
        """Answer with the router's page for failure ``name``; True if the connection stays."""
        failure = FAILURES[name]
        exchange.failure = name
        exchange.status = failure.status
        keep_alive = exchange.head.keep_alive and self.client.body_done
        body = render_page(failure, request_id=exchange.request_id.decode(), **values)
        body_out = b"" if exchange.head.method == b"HEAD" else body
        data = page_head_bytes(
            failure.status,
            _REASONS[failure.status],
            length=len(body),
            request_id=exchange.request_id,
            keep_alive=keep_alive,
        )
        data += body_out
        exchange.sent += len(data)
        self.writer.write(data)
        self.log_exchange(exchange)
        await self.writer.drain()
        return keep_alive

    async def _refuse(self, exc: BadRequest, exchange: Exchange | None = None) -> None:
        """Answer a request the router cannot parse or accept, then close the connection."""
        if exchange is None:
            empty = RequestHead(b"-", b"-", "1.1", [], False, False, False, False, None, "", None)
            exchange = Exchange(empty, _new_request_id(), self.loop.time())
        exchange.head.keep_alive = False
        await self.fail(exchange, _BAD_INPUT.get(exc.status, "bad_request"), reason=exc.reason)

    def log_exchange(self, exchange: Exchange) -> None:
        """Write the one log line of ``exchange``."""
        now = self.loop.time()
        failure = FAILURES.get(exchange.failure)
        if failure is not None and failure.code is not None:
            at = f'at=error code={failure.code} desc="{failure.desc}"'
        elif exchange.failure == "client_gone":
            at = 'at=error code=H27 desc="Client Request Interrupted"'
        else:
            at = "at=info"
        head = exchange.head
        # The logfmt of pages.logfmt, unrolled: this runs per request. A request id is
        # always plain (a sane client id or our hex); ``fwd`` is always quoted.
        connect = round(exchange.connect * 1000)
        service = round((now - exchange.service_start) * 1000)
        line = (
            f"{at} method={_logfmt_cached(head.method.decode('latin-1'))}"
            f" path={logfmt_value(redact_url(head.url.decode('latin-1')))}"
            f" host={_logfmt_cached(head.host)}"
            f" request_id={exchange.request_id.decode()} fwd={self.client.ip_logfmt}"
            f" dyno={_logfmt_cached(exchange.dyno)} connect={connect}ms service={service}ms"
            f" status={exchange.status} bytes={exchange.sent} protocol={self.ctx.proto_name}"
        )
        self.ctx.log(exchange.app, line)
