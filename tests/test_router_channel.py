"""The router's hot-path pieces: Channel read deadlines, parser reuse, request ids."""

from __future__ import annotations

import asyncio
import re

import pytest

from corral.router.channel import Channel
from corral.router.connection import _new_request_id
from corral.router.http1 import END, HEAD, ResponseParser


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
        # A read answered before its deadline leaves its timer set; when that timer fires
        # during a later read with a later deadline, it moves on instead of timing it out.
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


def test_request_ids_are_distinct_uuid4_hex() -> None:
    ids = {_new_request_id() for _ in range(600)}
    assert len(ids) == 600
    for rid in ids:
        assert re.fullmatch(rb"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}", rid)
