"""The router and long-lived responses: the platform's streams go to their own service,
and a client that hangs up on a quiet stream frees the backend at once."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral.router import (
    AppRoute,
    Backend,
    Router,
    RouteTable,
    Timeouts,
    load_route_table,
    save_route_table,
)

API = Backend("api", "127.0.0.1", 1)
STREAMS = Backend("streams", "127.0.0.1", 2)
PLATFORM = AppRoute("corral", (API,), streams=(STREAMS,))


@pytest.mark.parametrize(
    "method, target",
    [
        (b"GET", b"/api/v1/apps/hello/logs?tail=1"),
        (b"GET", b"/api/v1/apps/hello/logs"),
        (b"GET", b"/apps/hello/logs/stream?since=2026-01-01T00:00:00"),
    ],
)
def test_stream_requests_go_to_the_streams_backends(method: bytes, target: bytes) -> None:
    assert PLATFORM.for_request(method, target).backends == (STREAMS,)


@pytest.mark.parametrize(
    "method, target",
    [
        (b"GET", b"/api/v1/apps"),
        (b"GET", b"/api/v1/apps/hello"),
        (b"POST", b"/api/v1/apps/hello/logs"),
        (b"GET", b"/api/v1/apps/hello/logs/extra"),
        (b"GET", b"/apps/hello/logs"),
        (b"GET", b"/apps/a/b/logs/stream"),
    ],
)
def test_other_requests_stay_with_the_api(method: bytes, target: bytes) -> None:
    assert PLATFORM.for_request(method, target) is PLATFORM


def test_without_a_streams_service_the_api_serves_streams_too() -> None:
    route = AppRoute("corral", (API,))
    assert route.for_request(b"GET", b"/api/v1/apps/hello/logs?tail=1") is route


def test_streams_backends_survive_the_table_file(tmp_path: Path) -> None:
    table = RouteTable("localhost", {"corral": PLATFORM, "hello": AppRoute("hello", (API,))})
    save_route_table(table, tmp_path / "routes.json")
    assert load_route_table(tmp_path / "routes.json") == table


class QuietStream(threading.Thread):
    """A backend that starts a chunked response, sends one piece, then waits in silence
    and records when the router closes the connection."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.closed = threading.Event()
        self.closed_at = 0.0
        self.start()

    @property
    def backend(self) -> Backend:
        return Backend("web.1", "127.0.0.1", self.listener.getsockname()[1])

    def run(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            conn.settimeout(30)
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass
            self.closed_at = time.monotonic()
            self.closed.set()


@pytest.fixture
def quiet() -> Iterator[QuietStream]:
    backend = QuietStream()
    yield backend
    backend.listener.close()


def _serve(table: RouteTable, timeouts: Timeouts) -> tuple[Router, asyncio.AbstractEventLoop, int]:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    router = Router(lambda: table, log=lambda app, line: None, timeouts=timeouts)
    port = asyncio.run_coroutine_threadsafe(router.start(), loop).result(5)
    return router, loop, port


def _stop(router: Router, loop: asyncio.AbstractEventLoop) -> None:
    asyncio.run_coroutine_threadsafe(router.close(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)


def test_a_client_hanging_up_on_a_quiet_stream_frees_the_backend_at_once(
    quiet: QuietStream,
) -> None:
    table = RouteTable("localhost", {"hello": AppRoute("hello", (quiet.backend,))})
    router, loop, port = _serve(table, Timeouts(idle=30.0))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"GET /logs HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
            data = b""
            while b"first" not in data:
                data += client.recv(65536)
            hung_up = time.monotonic()
        assert quiet.closed.wait(5), "the router kept the backend connection open"
        assert quiet.closed_at - hung_up < 1.0
    finally:
        _stop(router, loop)


def test_the_router_sends_the_platforms_streams_to_their_service() -> None:
    api, streams = _Named("api"), _Named("streams")
    platform = AppRoute("corral", (api.backend,), streams=(streams.backend,))
    table = RouteTable("localhost", {"corral": platform}, {"localhost": "corral"})
    router, loop, port = _serve(table, Timeouts())
    try:
        url = f"http://localhost:{port}"
        assert httpx.get(f"{url}/api/v1/apps/hello/logs?tail=1").text == "streams"
        assert httpx.get(f"{url}/apps/hello/logs/stream").text == "streams"
        assert httpx.get(f"{url}/api/v1/apps").text == "api"
    finally:
        _stop(router, loop)
        api.stop()
        streams.stop()


class _Named:
    """A backend answering every request with its own name."""

    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def backend(self) -> Backend:
        return Backend(self.name.decode(), "127.0.0.1", self.listener.getsockname()[1])

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data and (piece := conn.recv(65536)):
                    data += piece
                head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                conn.sendall(head % len(self.name) + self.name)

    def stop(self) -> None:
        self.running = False
        self.listener.close()
