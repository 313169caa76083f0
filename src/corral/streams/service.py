"""The streams service's server: one asyncio loop, a coroutine per open stream.

Each connection carries one request. A stream's body is sent as it comes; meanwhile the
connection is watched, so a client that goes away (the router closes its side when its
own client does) ends the stream at once rather than at the next write, and the stream's
access is re-checked every :data:`~corral.streams.lines.RECHECK` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable

from corral.errors import UserError
from corral.streams.http import MAX_HEAD, Answer, Request, chunk, read_request, stream_head
from corral.streams.lines import RECHECK, Recheck
from corral.streams.views import Stream, ViewContext, dashboard_stream, log_tail

__all__ = ["StreamsServer"]

#: Seconds a connection may take to send its request head.
HEAD_TIMEOUT = 10.0

_View = Callable[[ViewContext, Request, str], Answer | Stream]
#: Path -> view; the router sends only these paths (on the platform's hosts) here.
_ROUTES: tuple[tuple[re.Pattern[str], _View], ...] = (
    (re.compile(r"/api/v1/apps/([^/]+)/logs"), log_tail),
    (re.compile(r"/apps/([^/]+)/logs/stream"), dashboard_stream),
)


class StreamsServer:
    """Serves the long-lived endpoints; :attr:`open` counts the streams open now."""

    def __init__(self, ctx: ViewContext, *, recheck: float = RECHECK) -> None:
        self.ctx = ctx
        self.recheck = recheck
        self.open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve the one request of a connection, then close it."""
        try:
            try:
                request = await asyncio.wait_for(read_request(reader), HEAD_TIMEOUT)
            except TimeoutError:
                return
            if request is None:
                writer.write(Answer.error(400, "Malformed request.", api=False).bytes())
            else:
                result = self.dispatch(request)
                if isinstance(result, Stream):
                    await self._stream(reader, writer, result)
                else:
                    writer.write(result.bytes())
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()

    def dispatch(self, request: Request) -> Answer | Stream:
        """The view's answer to ``request``, or the error the API would give."""
        api = request.path.startswith("/api/")
        if request.path == "/health":
            body = json.dumps({"status": "ok", "open": self.open}).encode()
            return Answer(200, "application/json", body)
        for pattern, view in _ROUTES:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if request.method != "GET":
                message = f"This endpoint does not accept {request.method}; use GET."
                return Answer.error(405, message, api=api)
            try:
                return view(self.ctx, request, match.group(1))
            except UserError as exc:
                return Answer.error(getattr(exc, "http_status", 400), exc.message, api=api)
        return Answer.error(404, "No such endpoint.", api=api)

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: Stream
    ) -> None:
        writer.write(stream_head(stream.content_type))
        self.open += 1
        sending = asyncio.ensure_future(self._send(writer, stream))
        gone = asyncio.ensure_future(_until_closed(reader))
        try:
            await asyncio.wait({sending, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.open -= 1
            for task in (sending, gone):
                task.cancel()
            await asyncio.gather(sending, gone, return_exceptions=True)
            await stream.body.aclose()  # type: ignore[attr-defined]

    async def _send(self, writer: asyncio.StreamWriter, stream: Stream) -> None:
        allowed = Recheck(stream.allowed, self.recheck)
        async for piece in stream.body:
            if piece:
                writer.write(chunk(piece))
                await writer.drain()
            if not allowed():
                if stream.farewell:
                    writer.write(chunk(stream.farewell))
                break
        writer.write(b"0\r\n\r\n")
        await writer.drain()


async def _until_closed(reader: asyncio.StreamReader) -> None:
    """Return once the other side closes (anything it sends meanwhile is dropped)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(MAX_HEAD):
            pass


async def serve(server: StreamsServer, host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` with ``server`` handling each connection."""
    return await asyncio.start_server(server.handle, host, port, limit=MAX_HEAD)
