"""One TCP connection as an :class:`asyncio.Protocol` with awaitable reads and writes.

It replaces the StreamReader/StreamWriter pair on the router's hot path: a read is one
future, and a read deadline is an entry in the router's :class:`Deadlines` instead of a
timeout object and a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from corral.router.deadlines import Deadlines
from corral.router.exchange import READ_SIZE

__all__ = ["Channel"]

# Reading from the socket pauses while more than this much is buffered unread.
_HIGH_WATER = 2 * READ_SIZE


class Channel(asyncio.Protocol):
    """Buffered reads with optional deadlines, writes with flow control, for one socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deadlines: Deadlines | None = None) -> None:
        self.loop = loop
        #: Where read deadlines are kept: shared by the router's channels, else this one's own.
        self.deadlines = deadlines if deadlines is not None else Deadlines()
        self.transport: asyncio.Transport | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._eof = False
        self._lost = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self._write_paused = False
        self._drainers: list[asyncio.Future[None]] = []
        #: Called once when the other side closes (EOF or lost), while set.
        self.on_gone: Callable[[], None] | None = None

    # -- protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        self._wake()
        if self._buffered > _HIGH_WATER and not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        self._gone()
        return True  # keep the transport open: the other way may still have bytes to write

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = self._eof = True
        if exc is not None:
            self._exc = exc
        self._wake()
        for waiter in self._drainers:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)
        self._drainers.clear()
        self._gone()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for waiter in self._drainers:
            if not waiter.done():
                waiter.set_result(None)
        self._drainers.clear()

    def _gone(self) -> None:
        callback = self.on_gone
        if callback is not None:
            self.on_gone = None
            callback()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- reading

    async def read(self, deadline: float | None = None) -> bytes:
        """Up to ``READ_SIZE`` buffered bytes, waiting for some; ``b""`` at EOF.

        Raises ``TimeoutError`` if nothing arrives by ``deadline`` (a ``loop.time()``), and
        the connection's error if it was lost to one.
        """
        if not self._buffer:
            if self._exc is not None:
                raise self._exc
            if self._eof:
                return b""
            waiter = self._waiter = self.loop.create_future()
            if deadline is None:
                try:
                    await waiter
                finally:
                    self._waiter = None
            else:
                slot = self.deadlines.add(self, deadline)
                try:
                    await waiter
                finally:
                    self._waiter = None
                    self.deadlines.remove(self, slot)
            if not self._buffer:
                if self._exc is not None:
                    raise self._exc
                return b""
        return self._take()

    def _take(self) -> bytes:
        buffer = self._buffer
        data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
        buffer.clear()
        if len(data) > READ_SIZE:
            buffer.append(data[READ_SIZE:])
            data = data[:READ_SIZE]
            self._buffered = len(buffer[0])
        else:
            self._buffered = 0
        if self._read_paused and self._buffered <= READ_SIZE and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return data

    def expire(self) -> None:
        """The deadline of the read in progress passed: it raises ``TimeoutError``."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_exception(TimeoutError())

    def interrupt(self, exc: BaseException) -> None:
        """Make the read in progress raise ``exc`` (the other end of a relay went away)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_exception(exc)

    def ended(self) -> bool:
        """The other side closed (sent EOF, or the connection was lost)."""
        return self._eof

    def has_unread(self) -> bool:
        """Bytes have arrived that no read has taken yet."""
        return bool(self._buffer)

    def at_eof(self) -> bool:
        """The other side closed and everything it sent has been read."""
        return self._eof and not self._buffer

    # -- writing

    def write(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark."""
        if self._exc is not None:
            raise self._exc
        if self.transport is None or self.transport.is_closing():
            await asyncio.sleep(0)  # let connection_lost run, as StreamWriter.drain does
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if not self._write_paused:
            return
        waiter = self.loop.create_future()
        self._drainers.append(waiter)
        await waiter

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def can_write_eof(self) -> bool:
        return self.transport is not None and self.transport.can_write_eof()

    def write_eof(self) -> None:
        self.transport.write_eof()  # type: ignore[union-attr]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self.transport is None:
            return default
        return self.transport.get_extra_info(name, default)
