"""The router's hot-path pieces: Channel read deadlines, parser reuse, request ids."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import socket
import time
import weakref
from collections.abc import Iterator

import pytest

from corral.router.channel import Channel
from corral.router.connection import _new_request_id
from corral.router.deadlines import TICK, Deadlines
from corral.router.http1 import END, HEAD, Limits, RequestParser, ResponseParser
from corral.router.pool import BackendPool
from corral.router.table import Backend


async def _pair() -> tuple[Channel, asyncio.StreamWriter, asyncio.Server]:
    loop = asyncio.get_running_loop()
    made: asyncio.Future[Channel] = loop.create_future()

    def factory() -> Channel:
        channel = Channel(loop)
        loop.call_soon(made.set_result, channel)
        return channel

    server = await loop.create_server(factory, "127.0.0.1", 0)
    _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    return await made, writer, server


def test_read_deadline_times_out_and_a_later_one_is_not_cut_short() -> None:
    async def scenario() -> None:
        channel, peer, server = await _pair()
        loop = channel.loop
        with pytest.raises(TimeoutError):
            await channel.read(loop.time() + 0.05)
        # A long deadline, then a short one: the short one still fires on time.
        loop.call_later(0.3, peer.write, b"late")
        started = loop.time()
        with pytest.raises(TimeoutError):
            await channel.read(loop.time() + 0.1)
        assert loop.time() - started < 0.25
        # The next read outlives the earlier timer and gets the bytes.
        assert await channel.read(loop.time() + 2) == b"late"
        # A read answered before its deadline clears it: when that time comes during a
        # later read with a later deadline, the later read goes on waiting.
        peer.write(b"now")
        assert await channel.read(loop.time() + 0.1) == b"now"
        loop.call_later(0.25, peer.write, b"later")
        assert await channel.read(loop.time() + 0.5) == b"later"
        peer.close()
        assert await channel.read(loop.time() + 2) == b""
        assert channel.at_eof()
        channel.close()
        server.close()

    asyncio.run(scenario())


def test_deadlines_fire_within_a_tick_after_their_time_and_never_before() -> None:
    class Target:
        def __init__(self) -> None:
            self.fired_at: float | None = None

        def expire(self) -> None:
            self.fired_at = asyncio.get_running_loop().time()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        now = loop.time()
        late, early, cleared = Target(), Target(), Target()
        deadlines.add(late, now + 0.3)
        deadlines.add(early, now + 0.1)  # earlier than the one the timer was set for
        deadlines.remove(cleared, deadlines.add(cleared, now + 0.1))
        give_up = now + 5
        while late.fired_at is None and loop.time() < give_up:  # polled, in the loop's time
            await asyncio.sleep(TICK / 4)
        assert late.fired_at is not None and early.fired_at is not None
        assert now + 0.1 <= early.fired_at < now + 0.1 + TICK + 0.05
        assert now + 0.3 <= late.fired_at < now + 0.3 + TICK + 0.05
        assert cleared.fired_at is None

    asyncio.run(scenario())


@contextlib.contextmanager
def _full_accept_queue() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A listener whose accept queue is full, so it drops further SYNs, and what fills it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            yield listener, fillers
        finally:
            for filler in fillers:
                filler.close()


def test_backend_connect_gives_up_after_its_timeout() -> None:
    # A dyno that never answers a connect.
    with _full_accept_queue() as (listener, _):
        port = listener.getsockname()[1]

        async def scenario() -> None:
            pool = BackendPool()
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.connect(Backend("web.1", "127.0.0.1", port), timeout=0.2)
            assert time.monotonic() - started < 2
            # Cancelled from outside, a connect says so rather than timing out.
            task = asyncio.ensure_future(
                pool.connect(Backend("web.1", "127.0.0.1", port), timeout=5)
            )
            await asyncio.sleep(0.05)  # the connect is in flight, its SYN unanswered
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(scenario())


REQUEST = b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n"


def test_a_new_backend_connection_carries_the_request_before_the_loop_turns() -> None:
    # A sync worker that accepted the connection finds the request waiting: the router
    # sent it with the connect, not a loop turn (or two) later.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        async def scenario() -> None:
            pool = BackendPool()
            task = asyncio.ensure_future(
                pool.connect(Backend("web.1", "127.0.0.1", port), timeout=5, first=REQUEST)
            )
            await asyncio.sleep(0)  # the connect has run up to its first wait
            worker, _ = listener.accept()  # blocks the loop, as a busy one would be
            with worker:
                worker.settimeout(0.5)
                assert worker.recv(1024) == REQUEST
                conn = await task
                worker.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                assert await conn.reader.read(time.monotonic() + 5) == (
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                )
                conn.close()

        asyncio.run(scenario())


def test_a_connect_that_waits_for_the_dyno_sends_the_request_once_accepted() -> None:
    # A full accept queue leaves the connect pending: the request goes when it completes.
    with _full_accept_queue() as (listener, fillers):
        port = listener.getsockname()[1]

        async def scenario() -> None:
            pool = BackendPool()
            backend = Backend("web.1", "127.0.0.1", port)
            with pytest.raises(TimeoutError):
                await pool.connect(backend, timeout=0.2, first=REQUEST)
            task = asyncio.ensure_future(pool.connect(backend, timeout=10, first=REQUEST))
            await asyncio.sleep(0.1)
            assert not task.done()
            for filler in fillers:  # the queue drains; the SYN's retry gets through
                filler.close()
            received = b""
            listener.setblocking(False)
            deadline = time.monotonic() + 8
            while received != REQUEST and time.monotonic() < deadline:
                try:
                    worker, _ = listener.accept()
                except BlockingIOError:
                    await asyncio.sleep(0.05)
                    continue
                with worker:
                    worker.setblocking(True)
                    worker.settimeout(1)
                    await task
                    received = worker.recv(1024)
            assert received == REQUEST
            (await task).close()

        asyncio.run(scenario())


def test_a_refused_connect_with_a_request_is_an_os_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connects are refused

        async def scenario() -> None:
            with pytest.raises(ConnectionRefusedError):
                await BackendPool().connect(
                    Backend("web.1", "127.0.0.1", port), timeout=1, first=REQUEST
                )

        asyncio.run(scenario())


def test_response_parser_is_reused_only_after_a_clean_end() -> None:
    parser = ResponseParser(head_request=False)
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    parser.feed(response)
    assert [kind for kind, _ in parser.events] == [HEAD, 1, END]
    parser.events.clear()
    assert parser.reuse(head_request=False)
    parser.feed(response)
    assert [kind for kind, _ in parser.events] == [HEAD, 1, END] and parser.done
    parser.events.clear()
    assert parser.reuse(head_request=True)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    parser.events.clear()
    assert not parser.reuse(head_request=False)  # httptools still expects the HEAD's body


def test_closed_parsers_are_freed_without_the_garbage_collector() -> None:
    # A dyno that closes every connection means a parser per request: no cycle may be left.
    response = ResponseParser(head_request=False)
    response.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    request = RequestParser(Limits())
    request.feed(b"GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n")
    refs = [weakref.ref(response), weakref.ref(request)]
    response.close()
    request.close()
    gc.disable()
    try:
        del response, request
        assert [ref() for ref in refs] == [None, None]
    finally:
        gc.enable()


def test_request_ids_are_distinct_uuid4_hex() -> None:
    ids = {_new_request_id() for _ in range(600)}
    assert len(ids) == 600
    for rid in ids:
        assert re.fullmatch(rb"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}", rid)
