"""Forward one routed request to a web dyno and stream its response back to the client.

The request body was read whole first (:mod:`corral.router.body`) and goes out with the
head; a response streams back in pieces of at most one socket read; WebSocket (and any other
``101 Switching Protocols``) upgrades become a raw byte tunnel. :func:`forward` reports
what happened as an :class:`Outcome`; the client connection acts on it (answers with the
router's page, writes the log line, keeps or closes the connection, runs the tunnel).
"""

from __future__ import annotations

import asyncio
import errno
from asyncio import FIRST_COMPLETED
from dataclasses import dataclass
from typing import Any

from corral.router.body import BodySender, RequestBody
from corral.router.channel import Channel
from corral.router.client import ClientStream
from corral.router.context import RouterContext
from corral.router.exchange import ClientGone, Exchange
from corral.router.heads import request_head_bytes, response_head_bytes
from corral.router.http1 import (
    BODY,
    END,
    HEAD,
    UPGRADE,
    BadResponse,
    ResponseHead,
    ResponseParser,
    chunk,
)
from corral.router.pool import BackendConnection
from corral.router.table import AppRoute

__all__ = [
    "BACKEND_CLOSED",
    "CLOSE",
    "KEEP",
    "NO_FILES",
    "REFUSED",
    "TIMED_OUT",
    "Outcome",
    "forward",
    "tunnel",
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What forwarding one request did, and what the client connection does next.

    The status and the bytes sent are in the request's :class:`Exchange`, where the log
    line reads them; the outcome only says what to do.
    """

    #: The dyno's response went out whole and the client connection may serve another request.
    keep_alive: bool = False
    #: The router's page to answer with instead (a name in ``pages.FAILURES``), or "".
    failure: str = ""
    #: The dyno switched protocols (its 101 went out): :func:`tunnel` over this connection.
    upgraded: BackendConnection | None = None


#: The outcomes of every request but an upgrade, made once rather than per request.
KEEP = Outcome(keep_alive=True)
CLOSE = Outcome()
#: No backend of the app accepted a connection (H10, as Heroku says it: "App crashed").
REFUSED = Outcome(failure="refused")
#: The router could not open a socket to any backend: it is out of file descriptors.
NO_FILES = Outcome(failure="no_files")
TIMED_OUT = Outcome(failure="timeout")
#: The dyno closed the connection or sent no valid response head.
BACKEND_CLOSED = Outcome(failure="closed")


class _NoResponse(Exception):
    """The backend closed the connection before sending a response head."""


async def forward(
    ctx: RouterContext,
    client: ClientStream,
    exchange: Exchange,
    route: AppRoute,
    body: RequestBody | None = None,
) -> Outcome:
    """Proxy ``exchange``'s request, with its ``body`` read whole, to one of ``route``'s
    backends and say how it went.

    Failures on the client's side (it left or stalled while the response streams) raise
    :class:`ClientGone`, ``TimeoutError`` or ``ConnectionError``.
    """
    head = exchange.head
    request = request_head_bytes(
        head,
        request_id=exchange.request_id,
        client_ip=client.ip_bytes,
        proto=ctx.proto,
        port=client.port,
        length=head.content_length if body is None else b"%d" % body.size,
    )
    # Without a body the request goes out with the connect (see BackendPool.connect).
    conn = await _connect(ctx, client, exchange, route, request if body is None else b"")
    if isinstance(conn, Outcome):
        return conn
    parser = conn.response_parser(head_request=head.method == b"HEAD")
    version = head.version
    sender: BodySender | None = None
    try:
        if body is None:
            try:
                response = await _await_response_head(ctx, client, conn, parser, version)
            except (_NoResponse, ConnectionError):
                if not conn.reused or parser.started:
                    raise
                # A pooled connection the dyno closed while idle: one retry on a fresh one.
                conn.close()
                timeout = ctx.timeouts.connect
                conn = await ctx.pool.connect(conn.backend, timeout=timeout, first=request)
                parser = conn.response_parser(head_request=head.method == b"HEAD")
                response = await _await_response_head(ctx, client, conn, parser, version)
        else:
            sender = BodySender(conn, parser, request, body.pieces())
            response = await _await_head_while_sending(ctx, client, conn, parser, sender, version)
    except TimeoutError:
        _cancel(sender)
        conn.close()
        return TIMED_OUT
    except (_NoResponse, BadResponse, ConnectionError, OSError):
        _cancel(sender)
        conn.close()
        return BACKEND_CLOSED
    except BaseException:
        _cancel(sender)
        conn.close()
        raise
    try:
        if response.status == 101 and head.upgrade:
            _pass_upgrade(client, exchange, parser, response)
            return Outcome(upgraded=conn)
        keep_alive = await _relay_response(ctx, client, exchange, conn, parser, response)
    except BaseException:
        _cancel(sender)
        conn.close()
        raise
    if sender is not None and not sender.complete:
        # The dyno answered before it read the whole body: its connection is out of step
        # (the client's is not, since the router read the body first).
        _cancel(sender)
        conn.close()
    elif response.keep_alive and parser.done and not parser.events:
        ctx.pool.release(conn)
    else:
        conn.close()
    return KEEP if keep_alive and not head.upgrade else CLOSE


def _cancel(sender: BodySender | asyncio.Future[Any] | None) -> None:
    task = sender.task if isinstance(sender, BodySender) else sender
    if task is not None and not task.done():
        task.cancel()


async def _connect(
    ctx: RouterContext, client: ClientStream, exchange: Exchange, route: AppRoute, first: bytes
) -> BackendConnection | Outcome:
    """A connection to the app's next backend in turn (those that refuse skipped), ``first``
    on its way; :data:`REFUSED` if none accepts, :data:`NO_FILES` if the router itself could
    not open a socket (out of file descriptors: the app is not to blame)."""
    loop = client.loop
    started = loop.time()
    for backend in ctx.balancer.order(route):
        try:
            conn = await ctx.pool.acquire(backend, timeout=ctx.timeouts.connect, first=first)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                return NO_FILES
            continue
        except TimeoutError:
            continue
        exchange.dyno = backend.dyno
        now = loop.time()
        exchange.connect = now - started
        exchange.service_start = now
        return conn
    return REFUSED


async def _await_response_head(
    ctx: RouterContext,
    client: ClientStream,
    conn: BackendConnection,
    parser: ResponseParser,
    version: str,
) -> ResponseHead:
    """The response head to a request sent whole (with the connect), by the request timeout."""
    deadline = client.loop.time() + ctx.timeouts.request
    return await _await_head(client, conn, parser, version, deadline)


async def _await_head(
    client: ClientStream,
    conn: BackendConnection,
    parser: ResponseParser,
    client_version: str,
    deadline: float | None = None,
) -> ResponseHead:
    """The final response head; interim 1xx responses are passed on to the client."""
    events = parser.events
    while True:
        while events:
            kind, payload = events.popleft()
            if kind != HEAD:
                continue
            assert isinstance(payload, ResponseHead)
            if payload.status >= 200 or payload.status == 101:
                return payload
            # An interim response (100 Continue, 103 Early Hints): pass it on as it is,
            # to HTTP/1.1 clients only (HTTP/1.0 has no interim responses).
            if client_version == "1.1":
                lines = [b"HTTP/1.1 %d %s\r\n" % (payload.status, payload.reason)]
                lines += [b"%s: %s\r\n" % header for header in payload.headers]
                client.channel.write(b"".join(lines) + b"\r\n")
        data = await conn.reader.read(deadline)
        if not data:
            raise _NoResponse
        parser.feed(data)


async def _await_head_while_sending(
    ctx: RouterContext,
    client: ClientStream,
    conn: BackendConnection,
    parser: ResponseParser,
    sender: BodySender,
    version: str,
) -> ResponseHead:
    """The response head; the request timeout starts once the whole body has been sent.

    While the body is still going out, a dyno that neither reads a piece nor answers for
    the idle timeout is given up on (as a timeout).
    """
    waiting = asyncio.ensure_future(_await_head(client, conn, parser, version))
    try:
        while not waiting.done():
            if sender.task.done():
                await asyncio.wait({waiting}, timeout=ctx.timeouts.request)
                if not waiting.done():
                    raise TimeoutError
                break
            sent = sender.sent
            await asyncio.wait(
                {sender.task, waiting}, timeout=ctx.timeouts.idle, return_when=FIRST_COMPLETED
            )
            if not waiting.done() and not sender.task.done() and sender.sent == sent:
                raise TimeoutError
        return waiting.result()
    finally:
        _cancel(waiting)


def _take_body(parser: ResponseParser, out: list[bytes], chunked: bool) -> bool:
    """Move queued body pieces into ``out``; True once the response has ended."""
    events = parser.events
    while events:
        kind, payload = events.popleft()
        if kind == BODY:
            assert isinstance(payload, bytes)
            out.append(chunk(payload) if chunked else payload)
        elif kind == END:
            if chunked:
                out.append(b"0\r\n\r\n")
            return True
        else:
            raise BadResponse("unexpected event in the response body")
    return False


async def _relay_response(
    ctx: RouterContext,
    client: ClientStream,
    exchange: Exchange,
    conn: BackendConnection,
    parser: ResponseParser,
    response: ResponseHead,
) -> bool:
    """Stream the response to the client; True if the client connection can be kept."""
    head = exchange.head
    keep_alive = head.keep_alive and client.body_done and not head.upgrade
    chunked = False
    bodyless = head.method == b"HEAD" or response.status in (204, 304)
    if bodyless:
        length = response.content_length
        framing = b"Content-Length: %s\r\n" % length if length is not None else b""
    elif response.content_length is not None and not response.chunked:
        framing = b"Content-Length: %s\r\n" % response.content_length
    elif head.version == "1.1":
        chunked = True
        if response.codings:  # e.g. gzip: the coding stays, only the chunks are new
            framing = b"Transfer-Encoding: %s, chunked\r\n" % response.codings
        else:
            framing = b"Transfer-Encoding: chunked\r\n"
    else:  # an HTTP/1.0 client: the body ends when the connection does
        framing = b"Transfer-Encoding: %s\r\n" % response.codings if response.codings else b""
        keep_alive = False
    framing += exchange.extra_head  # HSTS over HTTPS, when the app asked for it
    out = [
        response_head_bytes(
            response, request_id=exchange.request_id, framing=framing, keep_alive=keep_alive
        )
    ]
    exchange.status = response.status
    writer = client.channel
    reader = conn.reader
    idle = ctx.timeouts.idle
    loop = client.loop
    done = _take_body(parser, out, chunked)
    while True:
        data = b"".join(out)
        if writer.is_closing():
            raise ClientGone("client closed during the response")
        writer.write(data)
        exchange.sent += len(data)
        if done:
            break
        await writer.drain()
        out = []
        data = await _read_unless_gone(writer, reader, loop.time() + idle)
        if data:
            parser.feed(data)
            done = _take_body(parser, out, chunked)
        elif parser.feed_eof():
            done = _take_body(parser, out, chunked)
        else:  # the dyno died mid-body; the client must see a broken response, not a short one
            return False
    await writer.drain()
    return keep_alive


async def _read_unless_gone(client: Channel, backend: Channel, deadline: float) -> bytes:
    """The backend's next bytes of a response; :class:`ClientGone` as soon as the client
    hangs up meanwhile, so a quiet stream (a log tail) is not held open for nobody."""
    if client.ended():  # as nginx does: a client that closed its side is gone
        raise ClientGone("client closed during the response")
    client.on_gone = lambda: backend.interrupt(ClientGone("client closed during the response"))
    try:
        return await backend.read(deadline)
    finally:
        client.on_gone = None


def _pass_upgrade(
    client: ClientStream, exchange: Exchange, parser: ResponseParser, response: ResponseHead
) -> None:
    """Pass a 101 response on, with whatever the dyno sent after it."""
    from_backend = b"".join(p for k, p in parser.events if k == UPGRADE)  # type: ignore[misc]
    data = response_head_bytes(
        response, request_id=exchange.request_id, framing=b"", keep_alive=True
    )
    client.channel.write(data + from_backend)
    exchange.status = 101
    exchange.sent += len(data)


async def tunnel(client: ClientStream, conn: BackendConnection) -> None:
    """Copy raw bytes both ways between an upgraded client and its dyno until both are done.

    ``conn`` is closed at the end; the client connection is the caller's to close.
    """
    from_client = b"".join(p for k, p in client.parser.events if k == UPGRADE)  # type: ignore[misc]
    copies: list[asyncio.Future[None]] = []
    try:
        if from_client:
            conn.writer.write(from_client)
        copies = [
            asyncio.ensure_future(_copy(client.channel, conn.writer)),
            asyncio.ensure_future(_copy(conn.reader, client.channel)),
        ]
        _, pending = await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
        if pending:  # one side finished: give the other a moment to finish too
            await asyncio.wait(pending, timeout=client.timeouts.idle)
    finally:
        for task in copies:
            task.cancel()
        conn.close()


async def _copy(reader: Channel, writer: Channel) -> None:
    """Copy bytes until EOF, then half-close the other side."""
    try:
        while data := await reader.read():
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
    except ConnectionError:
        writer.close()
