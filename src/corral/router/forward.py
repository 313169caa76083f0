"""Forward one routed request to a web dyno and stream its response back to the client.

Bodies stream both ways in pieces of at most one socket read; WebSocket (and any other
``101 Switching Protocols``) upgrades become a raw byte tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from corral.router.channel import Channel
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

if TYPE_CHECKING:
    from corral.router.connection import ClientConnection

__all__ = ["forward"]


class _NoResponse(Exception):
    """The backend closed the connection before sending a response head."""


async def forward(client: ClientConnection, exchange: Exchange, route: AppRoute) -> bool:
    """Proxy ``exchange``'s request to one of ``route``'s backends; True to keep the client."""
    router = client.router
    head = exchange.head
    request = request_head_bytes(
        head,
        request_id=exchange.request_id,
        client_ip=client.client_ip_bytes,
        proto=router.proto,
        port=client.port,
    )
    conn = await _connect(client, exchange, route)
    if conn is None:
        return await client.fail(exchange, "refused")
    parser = conn.response_parser(head_request=head.method == b"HEAD")
    pump: asyncio.Task[None] | None = None
    try:
        if not head.has_body:
            try:
                response = await _send_and_await_head(client, conn, request, parser, head.version)
            except (_NoResponse, ConnectionError):
                if not conn.reused or parser.started:
                    raise
                # A pooled connection the dyno closed while idle: one retry on a fresh one.
                conn.close()
                conn = await router.pool.connect(conn.backend, timeout=router.timeouts.connect)
                parser = conn.response_parser(head_request=head.method == b"HEAD")
                response = await _send_and_await_head(client, conn, request, parser, head.version)
        else:
            conn.writer.write(request)
            pump = asyncio.ensure_future(_pump_body(client, conn, head.chunked))
            response = await _await_head_while_pumping(client, conn, parser, pump, head.version)
    except TimeoutError:
        _cancel(pump)
        conn.close()
        return await client.fail(exchange, "timeout")
    except (_NoResponse, BadResponse, ConnectionError, OSError):
        _cancel(pump)
        conn.close()
        return await client.fail(exchange, "closed")
    except BaseException:
        _cancel(pump)
        conn.close()
        raise
    try:
        if response.status == 101 and head.upgrade:
            await _tunnel(client, exchange, conn, parser, response)
            return False
        keep_alive = await _relay_response(client, exchange, conn, parser, response)
    except BaseException:
        _cancel(pump)
        conn.close()
        raise
    if pump is not None and not pump.done():
        # The dyno answered before reading the whole upload: the client stream is out of step.
        _cancel(pump)
        conn.close()
        return False
    if response.keep_alive and parser.done and not parser.events:
        router.pool.release(conn)
    else:
        conn.close()
    return keep_alive and not head.upgrade


def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()


async def _connect(
    client: ClientConnection, exchange: Exchange, route: AppRoute
) -> BackendConnection | None:
    """A connection to the app's next backend in turn, skipping those that refuse."""
    router = client.router
    started = client.loop.time()
    for backend in router.balancer.order(route):
        try:
            conn = await router.pool.acquire(backend, timeout=router.timeouts.connect)
        except (OSError, TimeoutError):
            continue
        exchange.dyno = backend.dyno
        now = client.loop.time()
        exchange.connect = now - started
        exchange.service_start = now
        return conn
    return None


async def _send_and_await_head(
    client: ClientConnection,
    conn: BackendConnection,
    request: bytes,
    parser: ResponseParser,
    version: str,
) -> ResponseHead:
    conn.writer.write(request)
    deadline = client.loop.time() + client.router.timeouts.request
    return await _await_head(client, conn, parser, version, deadline)


async def _await_head(
    client: ClientConnection,
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
                client.writer.write(b"".join(lines) + b"\r\n")
        data = await conn.reader.read(deadline)
        if not data:
            raise _NoResponse
        parser.feed(data)


async def _pump_body(client: ClientConnection, conn: BackendConnection, chunked: bool) -> None:
    """Stream the request body to the backend; client-side failures propagate.

    If the backend stops reading, the rest of the body is still read (and dropped) so the
    client connection stays in step; the response side reports what the backend did.
    """
    writer = conn.writer
    while True:
        kind, data = await client.next_body_event()
        if chunked:
            data = chunk(data) if kind == BODY else b"0\r\n\r\n"
        if data and not writer.is_closing():
            writer.write(data)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        if kind == END:
            return


async def _await_head_while_pumping(
    client: ClientConnection,
    conn: BackendConnection,
    parser: ResponseParser,
    pump: asyncio.Task[None],
    version: str,
) -> ResponseHead:
    """The response head; the request timeout starts once the whole body has been sent."""
    waiting = asyncio.ensure_future(_await_head(client, conn, parser, version))
    try:
        await asyncio.wait({pump, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if pump.done() and pump.exception() is not None:
            raise pump.exception()  # type: ignore[misc]
        if not waiting.done():
            await asyncio.wait({waiting}, timeout=client.router.timeouts.request)
        if not waiting.done():
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
    client: ClientConnection,
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
        framing = b"Transfer-Encoding: chunked\r\n"
    else:  # an HTTP/1.0 client: the body ends when the connection does
        framing = b""
        keep_alive = False
    out = [
        response_head_bytes(
            response, request_id=exchange.request_id, framing=framing, keep_alive=keep_alive
        )
    ]
    exchange.status = response.status
    writer = client.writer
    reader = conn.reader
    idle = client.router.timeouts.idle
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
        data = await reader.read(loop.time() + idle)
        if data:
            parser.feed(data)
            done = _take_body(parser, out, chunked)
        elif parser.feed_eof():
            done = _take_body(parser, out, chunked)
        else:  # the dyno died mid-body; the client must see a broken response, not a short one
            client.log_exchange(exchange)
            return False
    await writer.drain()
    client.log_exchange(exchange)
    return keep_alive


async def _tunnel(
    client: ClientConnection,
    exchange: Exchange,
    conn: BackendConnection,
    parser: ResponseParser,
    response: ResponseHead,
) -> None:
    """Pass a 101 response on, then copy raw bytes both ways until both sides are done."""
    from_backend = b"".join(p for k, p in parser.events if k == UPGRADE)  # type: ignore[misc]
    from_client = b"".join(p for k, p in client.parser.events if k == UPGRADE)  # type: ignore[misc]
    data = response_head_bytes(
        response, request_id=exchange.request_id, framing=b"", keep_alive=True
    )
    client.writer.write(data + from_backend)
    exchange.status = 101
    exchange.sent += len(data)
    client.log_exchange(exchange)
    if from_client:
        conn.writer.write(from_client)
    copies = [
        asyncio.ensure_future(_copy(client.reader, conn.writer)),
        asyncio.ensure_future(_copy(conn.reader, client.writer)),
    ]
    try:
        _, pending = await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
        if pending:  # one side finished: give the other a moment to finish too
            await asyncio.wait(pending, timeout=client.router.timeouts.idle)
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
