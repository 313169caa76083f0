"""The embedded router, end to end: real sockets on loopback, real backend servers.

Backends are small ``http.server`` servers in threads (a different HTTP implementation
than the router's); the router runs on its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from corral.router import AppRoute, Backend, RouteTable, Timeouts
from support.nginx import NginxRouter
from support.router import RouterThread
from support.wait import assert_stays, wait_until

# -- backends ---------------------------------------------------------------------------


class BackendServer(ThreadingHTTPServer):
    """A dyno stand-in that answers by path and counts what it sees."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.connections = 0
        self.received = 0  # request body bytes read so far, across requests
        self.release = threading.Event()  # lets a held response (SSE) finish
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def backend(self) -> Backend:
        return Backend(self.name, "127.0.0.1", self.server_address[1])

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: BackendServer

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, body: bytes, status: int = 200, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1234")
        self.end_headers()

    def do_GET(self) -> None:
        path = self.path
        if path == "/slow":
            self.server.release.wait(10)
            self._send(b"late")
        elif path == "/close":
            self.close_connection = True
        elif path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in (b"data: one\n\n", b"data: two\n\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                self.server.release.wait(10)
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/unframed":
            # An HTTP/1.0-style body: no length, ends when the connection closes.
            self.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"z" * 100_000)
            self.close_connection = True
        elif path == "/ws":
            self._websocket_echo()
        else:
            info = {"dyno": self.server.name, "path": path, "headers": dict(self.headers)}
            self._send(json.dumps(info).encode(), Content_Type="application/json")

    def do_POST(self) -> None:
        total = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while size := int(self.rfile.readline().split(b";")[0], 16):
                total += self._read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            total = self._read(int(self.headers.get("Content-Length") or 0))
        self._send(json.dumps({"dyno": self.server.name, "bytes": total}).encode())

    def _read(self, size: int) -> int:
        got = 0
        while got < size:
            piece = self.rfile.read(min(65536, size - got))
            if not piece:
                break
            got += len(piece)
            self.server.received += len(piece)
        return got

    def _websocket_echo(self) -> None:
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while data := self.connection.recv(65536):
            self.connection.sendall(data.upper())


# -- the router under test ----------------------------------------------------------------


def poll(condition: Callable[[], bool], timeout: float = 5) -> None:
    """Wait until ``condition()`` holds, failing after ``timeout`` seconds."""
    wait_until(condition, timeout, interval=0.01)


@pytest.fixture
def backends() -> Iterator[list[BackendServer]]:
    servers = [BackendServer("web.1"), BackendServer("web.2")]
    yield servers
    for server in servers:
        server.stop()


def _table(*routes: AppRoute, **custom: str) -> RouteTable:
    domains = {host.replace("_", "."): app for host, app in custom.items()}
    return RouteTable("localhost", {r.app: r for r in routes}, domains)


@pytest.fixture
def router(
    request: pytest.FixtureRequest, backends: list[BackendServer], tmp_path
) -> Iterator[RouterThread | NginxRouter]:
    """The embedded router; or nginx, in the tests marked :data:`both`."""
    table = _table(AppRoute("hello", (backends[0].backend,)), www_example_com="hello")
    timeouts = Timeouts(request=1.0, header=0.5, idle=5.0)
    if getattr(request, "param", "embedded") == "nginx":
        running: RouterThread | NginxRouter = NginxRouter(tmp_path, table, timeouts)
    else:
        running = RouterThread(table, timeouts)
    yield running
    running.close()


#: The behaviours both routers share, proved against each (nginx: corral's generated config).
both = pytest.mark.parametrize("router", ["embedded", "nginx"], indirect=True)


def get(
    router: RouterThread, path: str = "/", host: str = "hello.localhost", **kw
) -> httpx.Response:
    return httpx.get(router.url + path, headers={"Host": host, **kw.pop("headers", {})}, **kw)


# -- raw socket helpers -------------------------------------------------------------------


def connect(router: RouterThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", router.port), timeout=5)
    return sock


def read_response(sock: socket.socket, buffer: bytearray | None = None) -> tuple[bytes, bytes]:
    """One Content-Length-framed response from ``sock``: (head, body)."""
    buffer = buffer if buffer is not None else bytearray()
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed after {bytes(buffer)!r}")
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    buffer[:] = rest
    while len(buffer) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed mid-body")
        buffer += data
    body = bytes(buffer[:length])
    del buffer[:length]
    return head, body


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


# -- routing --------------------------------------------------------------------------------


@both
def test_routes_by_app_subdomain_ignoring_port(router: RouterThread) -> None:
    response = get(router, "/hi", host="hello.localhost:8080")
    assert response.status_code == 200
    assert response.json()["path"] == "/hi"
    app, line = router.wait_log(lambda line: "path=/hi" in line)
    assert app == "hello"
    assert "at=info method=GET" in line and "dyno=web.1" in line and "status=200" in line
    assert 'fwd="127.0.0.1"' in line and "host=hello.localhost:8080" in line


@both
def test_routes_custom_domain(router: RouterThread) -> None:
    response = get(router, host="www.example.com")
    assert response.status_code == 200 and response.json()["dyno"] == "web.1"


@both
def test_unknown_host_gets_404_page_naming_the_host(router: RouterThread) -> None:
    response = get(router, host="nosuch.localhost")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache, no-store"
    assert "nosuch.localhost" in response.text
    assert response.headers["x-request-id"] in response.text
    router.wait_log(lambda line: "status=404" in line and "host=nosuch.localhost" in line)


def test_round_robin_alternates_between_backends(backends: list[BackendServer]) -> None:
    table = _table(AppRoute("hello", tuple(b.backend for b in backends)))
    running = RouterThread(table)
    try:
        with httpx.Client(base_url=running.url, headers={"Host": "hello.localhost"}) as client:
            dynos = [client.get("/").json()["dyno"] for _ in range(6)]
    finally:
        running.close()
    assert dynos in (["web.1", "web.2"] * 3, ["web.2", "web.1"] * 3)


@both
def test_backend_sees_forwarded_headers(router: RouterThread) -> None:
    response = get(router, host="hello.localhost", headers={"X-Forwarded-For": "10.0.0.1"})
    seen = response.json()["headers"]
    assert seen["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Port"] == str(router.port)
    assert seen["Via"] == "1.1 corral"
    assert len(seen["X-Request-Id"]) == 32 and int(seen["X-Request-Id"], 16) >= 0
    assert response.headers["x-request-id"] == seen["X-Request-Id"]
    assert response.headers["via"] == "1.1 corral"
    assert "cache-control" not in response.headers  # the router's pages only


@both
def test_sane_client_request_id_is_kept_and_junk_replaced(router: RouterThread) -> None:
    sane = "req-0123456789abcdef-XYZ"
    response = get(router, headers={"X-Request-Id": sane})
    assert response.json()["headers"]["X-Request-Id"] == sane
    assert response.headers["x-request-id"] == sane
    junk = get(router, headers={"X-Request-Id": "short"})
    assert junk.json()["headers"]["X-Request-Id"] != "short"
    assert len(junk.headers["x-request-id"]) == 32


def test_keep_alive_serves_several_requests_on_one_connection(
    router: RouterThread, backends: list[BackendServer]
) -> None:
    sock = connect(router)
    buffer = bytearray()
    with sock:
        for i in range(5):
            sock.sendall(b"GET /n%d HTTP/1.1\r\nHost: hello.localhost\r\n\r\n" % i)
            head, body = read_response(sock, buffer)
            assert status_of(head) == 200 and json.loads(body)["path"] == f"/n{i}"
        # Pipelined: three requests in one write, three answers in order.
        sock.sendall(
            b"".join(b"GET /p%d HTTP/1.1\r\nHost: hello.localhost\r\n\r\n" % i for i in range(3))
        )
        paths = [json.loads(read_response(sock, buffer)[1])["path"] for _ in range(3)]
        assert paths == ["/p0", "/p1", "/p2"]
    assert backends[0].connections == 1  # the backend connection was pooled and reused


def test_head_request_gets_headers_only(router: RouterThread) -> None:
    sock = connect(router)
    with sock:
        for _ in range(2):  # twice: the connections on both sides stay usable
            sock.sendall(b"HEAD / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200") and b"Content-Length: 1234" in data
            assert data.endswith(b"\r\n\r\n")


# -- error pages ----------------------------------------------------------------------------


@both
def test_no_web_dynos_is_h14(router: RouterThread) -> None:
    router.table = _table(AppRoute("hello"))
    response = get(router)
    assert response.status_code == 503 and "No web dynos" in response.text
    app, line = router.wait_log(lambda line: "code=H14" in line)
    assert app == "hello" and 'at=error code=H14 desc="No web dynos running"' in line


@both
def test_app_without_a_web_type_is_not_told_to_scale_web(router: RouterThread) -> None:
    router.table = _table(AppRoute("hello", has_web=False))
    response = get(router)
    assert response.status_code == 503 and "ps:scale" not in response.text
    assert "has no web process" in response.text and "`web:` line" in response.text
    app, line = router.wait_log(lambda line: "code=H14" in line)
    assert app == "hello" and 'desc="No web process type"' in line


@both
def test_crashed_app_is_h10(router: RouterThread) -> None:
    router.table = _table(AppRoute("hello", crashed=True))
    response = get(router)
    assert response.status_code == 503 and "crashed" in response.text
    router.wait_log(lambda line: 'code=H10 desc="App crashed"' in line and "status=503" in line)


@both
def test_maintenance_mode_is_h80(router: RouterThread, backends: list[BackendServer]) -> None:
    router.table = _table(AppRoute("hello", (backends[0].backend,), maintenance=True))
    response = get(router)
    assert response.status_code == 503 and "maintenance" in response.text
    router.wait_log(lambda line: "code=H80" in line)
    assert backends[0].connections == 0


@both
def test_refused_backend_is_skipped_for_the_next(
    router: RouterThread, backends: list[BackendServer]
) -> None:
    dead = Backend("web.9", "127.0.0.1", _closed_port())
    router.table = _table(AppRoute("hello", (dead, backends[1].backend)))
    assert [get(router).json()["dyno"] for _ in range(3)] == ["web.2"] * 3


@both
def test_all_backends_refusing_is_h10(router: RouterThread) -> None:
    dead = tuple(Backend(f"web.{i}", "127.0.0.1", _closed_port()) for i in (1, 2))
    router.table = _table(AppRoute("hello", dead))
    assert get(router).status_code == 503
    router.wait_log(lambda line: "code=H10" in line)


@both
def test_backend_timeout_is_h12(router: RouterThread) -> None:
    started = time.monotonic()
    response = get(router, "/slow", timeout=10)
    assert response.status_code == 503 and "did not answer in time" in response.text
    assert 0.9 < time.monotonic() - started < 5  # the test router's request timeout is 1 s
    router.wait_log(lambda line: 'code=H12 desc="Request timeout"' in line and "dyno=web.1" in line)
    assert get(router).status_code == 200  # the router is fine afterwards


@both
def test_backend_closing_without_response_is_h13(router: RouterThread) -> None:
    response = get(router, "/close")
    assert response.status_code == 503
    router.wait_log(lambda line: "code=H13" in line)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- streaming ------------------------------------------------------------------------------

UPLOAD = 20 * 1024 * 1024


def test_large_chunked_upload_is_buffered_then_reaches_the_backend_whole(
    router: RouterThread, backends: list[BackendServer]
) -> None:
    def body() -> Iterator[bytes]:
        piece = b"u" * 65536
        for _ in range(UPLOAD // len(piece) - 1):
            yield piece
        # The router reads the body whole before a dyno is involved (no dyno thread waits).
        assert_stays(lambda: backends[0].connections == 0, 0.2)
        yield piece

    response = httpx.post(
        router.url + "/upload", content=body(), headers={"Host": "hello.localhost"}, timeout=30
    )
    assert response.status_code == 200 and response.json()["bytes"] == UPLOAD


@both
def test_large_upload_with_content_length_is_buffered_then_sent_whole(
    router: RouterThread, backends: list[BackendServer]
) -> None:
    sock = connect(router)
    with sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: %d\r\n\r\n" % UPLOAD
        )
        piece = b"c" * 65536
        for _ in range(UPLOAD // len(piece) - 1):
            sock.sendall(piece)
        assert_stays(lambda: backends[0].connections == 0, 0.2)
        sock.sendall(piece)
        head, body = read_response(sock)
    assert status_of(head) == 200 and json.loads(body)["bytes"] == UPLOAD


@both
def test_server_sent_events_arrive_before_the_backend_finishes(
    router: RouterThread, backends: list[BackendServer]
) -> None:
    headers = {"Host": "hello.localhost"}
    with httpx.stream("GET", router.url + "/sse", headers=headers, timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream"
        lines = response.iter_lines()
        assert next(lines) == "data: one"  # while the backend still holds the stream open
        backends[0].release.set()
        rest = [line for line in lines if line]
    assert rest == ["data: two"]


def test_close_delimited_response_is_rechunked_for_keep_alive(router: RouterThread) -> None:
    with httpx.Client(base_url=router.url, headers={"Host": "hello.localhost"}) as client:
        response = client.get("/unframed")
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.content == b"z" * 100_000
        assert client.get("/after").json()["path"] == "/after"


@both
def test_websocket_upgrade_is_a_raw_tunnel(router: RouterThread) -> None:
    sock = connect(router)
    with sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: hello.localhost\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        assert b"Upgrade: websocket" in head
        for i, message in enumerate((b"hello", b"\x00\x01binary\xff" * 1000)):
            if i:  # quiet for longer than the request timeout: a tunnel is not held to it
                time.sleep(1.5)
            sock.sendall(message)
            echoed = b""
            while len(echoed) < len(message):
                piece = sock.recv(65536)
                assert piece, f"the tunnel closed after {len(echoed)} bytes of message {i}"
                echoed += piece
            assert echoed == message.upper()
    router.wait_log(lambda line: "path=/ws" in line and "status=101" in line)


# -- bad input ------------------------------------------------------------------------------


def _raw(router: RouterThread, data: bytes) -> tuple[int, bytes]:
    sock = connect(router)
    with sock:
        sock.sendall(data)
        head, body = read_response(sock)
        assert sock.recv(1) == b""  # the router closes after refusing
    return status_of(head), body


def test_conflicting_content_length_and_transfer_encoding_is_400(router: RouterThread) -> None:
    status, _ = _raw(
        router,
        b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    assert status == 400
    router.wait_log(lambda line: "status=400" in line)


def test_differing_duplicate_content_length_is_400(router: RouterThread) -> None:
    status, _ = _raw(
        router,
        b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 5\r\n"
        b"Content-Length: 6\r\n\r\nhello!",
    )
    assert status == 400


def test_huge_request_line_is_414(router: RouterThread) -> None:
    status, _ = _raw(
        router, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: hello.localhost\r\n\r\n"
    )
    assert status == 414


def test_huge_headers_are_431(router: RouterThread) -> None:
    big = b"X-Big: " + b"b" * 20000 + b"\r\n"
    status, _ = _raw(router, b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n" + big + b"\r\n")
    assert status == 431
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    status, _ = _raw(router, b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n" + many + b"\r\n")
    assert status == 431


def test_huge_header_sent_slowly_is_431(router: RouterThread) -> None:
    sock = connect(router)
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nX-Big: ")
        for _ in range(40):  # 40 KiB in pieces, one header that never ends
            try:
                sock.sendall(b"b" * 1024)
            except ConnectionError:
                break
        head, _ = read_response(sock)
    assert status_of(head) == 431


def test_client_that_never_finishes_its_headers_is_dropped_while_others_are_served(
    router: RouterThread,
) -> None:
    slow = connect(router)
    with slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: hello.local")
        started = time.monotonic()
        # Meanwhile other clients are served at once.
        for _ in range(3):
            assert get(router).status_code == 200
        assert time.monotonic() - started < 0.5
        slow.settimeout(5)
        assert slow.recv(1024) == b""  # dropped after the 0.5 s header timeout
        assert time.monotonic() - started < 3


def test_client_that_never_sends_a_byte_is_dropped_after_the_header_timeout(
    router: RouterThread,
) -> None:
    silent = connect(router)
    with silent:
        started = time.monotonic()
        assert get(router).status_code == 200
        silent.settimeout(5)
        assert silent.recv(1024) == b""  # dropped after the 0.5 s header timeout, unanswered
        assert 0.4 < time.monotonic() - started < 3


def test_closing_the_router_drops_clients_that_sent_nothing(backends: list[BackendServer]) -> None:
    running = RouterThread(_table(AppRoute("hello", (backends[0].backend,))))
    try:
        silent = connect(running)
        with silent:
            assert get(running).status_code == 200  # the silent client has surely been accepted
            asyncio.run_coroutine_threadsafe(running.router.close(), running.loop).result(5)
            silent.settimeout(5)
            assert silent.recv(1024) == b""
    finally:
        running.close()


def test_expect_100_continue_is_passed_on_before_the_body(router: RouterThread) -> None:
    sock = connect(router)
    with sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(b"hello")
        head, body = read_response(sock, bytearray(interim.partition(b"\r\n\r\n")[2]))
    assert status_of(head) == 200 and json.loads(body)["bytes"] == 5


def test_client_leaving_mid_upload_is_logged_and_frees_the_router(router: RouterThread) -> None:
    sock = connect(router)
    sock.sendall(
        b"POST /upload HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 100000\r\n\r\n"
    )
    sock.sendall(b"x" * 1000)
    sock.close()
    router.wait_log(lambda line: "code=H27" in line)
    assert get(router).status_code == 200


def test_http10_client_gets_a_close_delimited_body(router: RouterThread) -> None:
    sock = connect(router)
    with sock:
        sock.sendall(b"GET /unframed HTTP/1.0\r\nHost: hello.localhost\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert status_of(head) == 200 and b"chunked" not in head.lower()
    assert body == b"z" * 100_000
