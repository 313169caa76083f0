"""Request bodies read whole before a dyno sees them: in memory up to a limit, then a file.

A sync worker (``gunicorn -k sync``, or one of the API's threads) is held for as long as
its request takes to arrive, so a client sending a byte every few seconds would hold it
for minutes. The router reads the whole body first, as production proxies do, and only
then connects to a dyno, which gets the request at loopback speed; a body larger than
:attr:`Limits.max_body` is refused with 413, one too slow with 408.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Iterator
from typing import IO

from corral.router.client import ClientStream
from corral.router.exchange import READ_SIZE
from corral.router.http1 import END, BadRequest, Limits, RequestHead, ResponseParser
from corral.router.pool import BackendConnection

__all__ = ["BodySender", "RequestBody", "read_body"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _too_large(limit: int) -> BadRequest:
    size = f"{limit >> 20} MB" if limit >= 1 << 20 else f"{limit} bytes"
    return BadRequest(413, f"The request body is larger than the router accepts ({size})")


class RequestBody:
    """A request body as it arrived: pieces in memory, or an unnamed temporary file past a limit."""

    __slots__ = ("_dir", "_file", "_in_memory", "_max", "_pieces", "size")

    def __init__(self, limits: Limits, directory: str | None = None) -> None:
        self._in_memory = limits.body_in_memory
        self._max = limits.max_body
        self._dir = directory
        self._pieces: list[bytes] = []
        self._file: IO[bytes] | None = None
        #: Bytes so far; the Content-Length the dyno is sent.
        self.size = 0

    @property
    def spooled(self) -> bool:
        """The body outgrew memory and lives in a temporary file."""
        return self._file is not None

    def add(self, data: bytes) -> None:
        """Append ``data``; raises :class:`BadRequest` (413) once the body passes the cap."""
        self.size += len(data)
        if self.size > self._max:
            raise _too_large(self._max)
        if self._file is None:
            if self.size <= self._in_memory:
                self._pieces.append(data)
                return
            # Removed from the directory at once: the file goes when it is closed.
            self._file = tempfile.TemporaryFile(dir=self._dir)  # noqa: SIM115 (closed in close)
            self._file.writelines(self._pieces)
            self._pieces = []
        self._file.write(data)

    def pieces(self) -> Iterator[bytes]:
        """The body from its start: one piece from memory, or the file ``READ_SIZE`` at a time."""
        file = self._file
        if file is None:
            yield b"".join(self._pieces)
            return
        file.flush()
        file.seek(0)
        while data := file.read(READ_SIZE):
            yield data

    def close(self) -> None:
        """Let go of the memory or the temporary file."""
        self._pieces = []
        if self._file is not None:
            self._file.close()
            self._file = None


def _expects_continue(head: RequestHead) -> bool:
    return head.version == "1.1" and any(
        name.lower() == b"expect" and value.strip().lower() == b"100-continue"
        for name, value in head.headers
    )


async def read_body(
    client: ClientStream, head: RequestHead, limits: Limits, directory: str | None = None
) -> RequestBody:
    """The whole body of ``head``'s request, read from ``client`` within the body timeout.

    Raises :class:`BadRequest` (413 too large, 408 too slow, 400 malformed) or
    :class:`~corral.router.exchange.ClientGone`. A client that waits for ``100 Continue``
    is told to go on by the router itself, since the dyno sees the request only later.
    """
    declared = head.content_length
    if declared is not None and not head.chunked and int(declared) > limits.max_body:
        raise _too_large(limits.max_body)
    if _expects_continue(head):
        client.channel.write(_CONTINUE)
    body = RequestBody(limits, directory)
    deadline = client.loop.time() + client.timeouts.body
    try:
        while True:
            kind, data = await client.next_body_event(deadline)
            if kind == END:
                return body
            body.add(data)
    except BaseException:
        body.close()
        raise


class BodySender:
    """Sends a request (head and body) to a dyno, a piece at a time as the dyno reads.

    It writes on a duplicate of the connection's socket, not through its transport: a
    dyno that answers early and closes without reading the rest (a 413) resets the
    connection, and a write failing on the transport would make the event loop close
    the socket with that answer unread in it (H13 instead of the dyno's 413). Here a
    failed write only ends the sending; the transport still reads the answer. It also
    stops once the dyno starts to answer.
    """

    __slots__ = ("_channel", "_parser", "_pieces", "complete", "sent", "task")

    def __init__(
        self,
        conn: BackendConnection,
        parser: ResponseParser,
        request: bytes,
        pieces: Iterator[bytes],
    ) -> None:
        self._channel = conn.writer
        self._parser = parser
        self._pieces = pieces
        #: Pieces written so far, to tell a dyno that reads slowly from one that stopped.
        self.sent = 0
        #: All of it was written (else the connection is out of step, never to be reused).
        self.complete = False
        self.task = asyncio.ensure_future(self._send(request + next(pieces, b"")))

    async def _send(self, data: bytes) -> None:
        channel, parser = self._channel, self._parser
        fileno = channel.get_extra_info("socket").fileno()
        sock = socket.socket(fileno=os.dup(fileno))
        try:
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            while data:
                if channel.is_closing() or parser.started or channel.has_unread():
                    return
                await loop.sock_sendall(sock, data)
                self.sent += 1
                data = next(self._pieces, b"")
            self.complete = True
        except OSError:  # the dyno went away: what it answered, if anything, is read
            return
        finally:
            sock.close()
