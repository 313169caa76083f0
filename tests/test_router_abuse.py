"""Hostile and careless clients at the router: slow uploads, early answers, too many
connections, ambiguous heads. Real gunicorn dynos and router processes on loopback."""

from __future__ import annotations

import gzip
import hashlib
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral.router import AppRoute, Backend, Limits, RouteTable, save_route_table
from support.processes import free_port, stop_group
from support.router import RouterThread
from support.wait import wait_for_http, wait_until

pytest.importorskip("gunicorn")

pytestmark = pytest.mark.slow

APP = """
import hashlib


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/early":  # answers without reading a byte of the body, as a size check does
        body = b"too big for this app\\n"
        status = "413 Request Entity Too Large"
    elif path == "/upload":
        data = environ["wsgi.input"].read()
        body = b"%s %d" % (hashlib.sha256(data).hexdigest().encode(), len(data))
        status = "200 OK"
    else:
        body, status = b"hello", "200 OK"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""

HOST = b"Host: hello.localhost\r\n"


def _start(args: list[str], cwd: Path, out: Path, **kw: object) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN")}
    with open(out, "wb") as log:
        return subprocess.Popen(
            args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, **kw,
        )  # fmt: skip


class Platform:
    """One sync gunicorn dyno (one worker) and a router process in front of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "app.py").write_text(APP)
        self.dyno_port = free_port()
        gunicorn = [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "sync"]
        self.dyno = _start(
            [*gunicorn, "-b", f"127.0.0.1:{self.dyno_port}", "app:app"], root, root / "web.log"
        )
        self.processes = [self.dyno]
        wait_for_http(f"http://127.0.0.1:{self.dyno_port}/", process=self.dyno)
        self.table = root / "routes.json"
        backend = Backend("web.1", "127.0.0.1", self.dyno_port)
        table = RouteTable("localhost", {"hello": AppRoute("hello", (backend,))})
        save_route_table(table, self.table)

    def router(self, *args: str, name: str = "router", **kw: object) -> tuple[str, Path]:
        """Start a router with ``args``; its URL and its output file."""
        port = free_port()
        command = [sys.executable, "-m", "corral.router", "--table", str(self.table)]
        out = self.root / f"{name}.log"
        process = _start([*command, "--bind", f"127.0.0.1:{port}", *args], self.root, out, **kw)
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url, process=process)
        return url, out

    def close(self) -> None:
        for process in self.processes:
            stop_group(process)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = Platform(tmp_path_factory.mktemp("router-abuse"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def router_url(platform: Platform) -> str:
    """A router with the default limits."""
    return platform.router()[0]


@pytest.fixture(scope="module")
def capped_url(platform: Platform) -> str:
    """A router that takes request bodies of up to 1 MB."""
    return platform.router("--max-body", "1", name="router-capped")[0]


def _port(url: str) -> int:
    return int(url.rpartition(":")[2])


def _response(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """(status, head, body) of one Content-Length-framed response."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError(f"closed after {data!r}")
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError("closed mid-body")
        body += piece
    return int(head.split(b" ", 2)[1]), head, body[:length]


def _exchange(url: str, data: bytes, source: str = "127.0.0.1") -> tuple[int, bytes, bytes]:
    with socket.create_connection(("127.0.0.1", _port(url)), 10, (source, 0)) as sock:
        sock.sendall(data)
        return _response(sock)


# -- slow uploads and early answers ---------------------------------------------------------


def test_slow_upload_does_not_hold_a_sync_dyno_and_arrives_intact(router_url: str) -> None:
    body = b"0123456789" * 3
    outcome: dict[str, object] = {}
    started = threading.Event()

    def upload() -> None:
        with socket.create_connection(("127.0.0.1", _port(router_url)), 20) as sock:
            sock.sendall(b"POST /upload HTTP/1.1\r\n" + HOST + b"Content-Length: 30\r\n\r\n")
            for at in range(len(body)):  # 30 bytes over ~3 s
                sock.sendall(body[at : at + 1])
                started.set()
                time.sleep(0.1)  # the attack itself: a byte at a time, not a wait for a condition
            outcome["response"] = _response(sock)

    uploader = threading.Thread(target=upload)
    uploader.start()
    try:
        assert started.wait(5)
        sent = time.monotonic()
        response = httpx.get(router_url, headers={"Host": "hello.localhost"}, timeout=10)
        elapsed = time.monotonic() - sent
        assert response.status_code == 200 and response.text == "hello"
        assert elapsed < 1.0, f"the one sync worker was held by the slow upload ({elapsed:.1f} s)"
        assert "response" not in outcome  # answered while the upload was still arriving
    finally:
        uploader.join(20)
    status, _, answer = outcome["response"]  # type: ignore[misc]
    assert status == 200 and answer == b"%s 30" % hashlib.sha256(body).hexdigest().encode()


@pytest.mark.parametrize("size", [10_000, 4_000_000], ids=["in-memory", "spooled"])
def test_app_answering_before_it_reads_the_body_is_relayed(router_url: str, size: int) -> None:
    request = b"POST /early HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % size
    with socket.create_connection(("127.0.0.1", _port(router_url)), 10) as sock:
        for _ in range(5):  # and the connection stays usable: the router read the body whole
            sock.sendall(request + b"x" * size)
            status, _, body = _response(sock)
            assert (status, body) == (413, b"too big for this app\n")


def test_body_over_the_routers_cap_is_its_own_413(capped_url: str) -> None:
    declared = b"POST /upload HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % (2 << 20)
    status, head, page = _exchange(capped_url, declared + b"x" * 65536)
    assert status == 413 and b"Connection: close" in head
    assert b"larger than the router accepts (1 MB)" in page
    piece = b"x" * 65536
    chunked = b"POST /upload HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
    chunked += b"%x\r\n%s\r\n" % (len(piece), piece) * 20  # 1.25 MB, never ended
    status, _, page = _exchange(capped_url, chunked)
    assert status == 413 and b"larger than the router accepts" in page


def test_body_sent_too_slowly_is_408(platform: Platform) -> None:
    url, log = platform.router("--body-timeout", "0.5", name="router-408")
    request = b"POST /upload HTTP/1.1\r\n" + HOST + b"Content-Length: 100\r\n\r\n" + b"x" * 10
    started = time.monotonic()
    status, _, page = _exchange(url, request)  # and then nothing more
    assert status == 408 and b"did not arrive within 0.5 s" in page
    assert time.monotonic() - started < 5
    wait_until(lambda: "code=H28" in log.read_text(), 5, message="an H28 line")


# -- ambiguous heads --------------------------------------------------------------------------


def test_duplicate_host_headers_are_400(router_url: str) -> None:
    request = b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nHost: other.localhost\r\n\r\n"
    status, _, page = _exchange(router_url, request)
    assert status == 400 and b"more than one Host header" in page


def test_request_transfer_coding_other_than_chunked_is_501(router_url: str) -> None:
    data = gzip.compress(b"hello")
    request = b"POST /upload HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
    status, _, page = _exchange(router_url, request + b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
    assert status == 501 and b"Transfer-Encoding &#x27;gzip&#x27; is not supported" in page


def test_response_transfer_coding_is_kept_when_rechunked() -> None:
    """A dyno's ``Transfer-Encoding: gzip, chunked`` reaches the client with gzip still said."""
    data = gzip.compress(b"hello, gzip")
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while b"\r\n\r\n" not in conn.recv(65536):
                pass
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
            )

    backend = threading.Thread(target=serve, daemon=True)
    backend.start()
    route = AppRoute("hello", (Backend("web.1", "127.0.0.1", listener.getsockname()[1]),))
    router = RouterThread(RouteTable("localhost", {"hello": route}))
    try:
        with socket.create_connection(("127.0.0.1", router.port), 10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n")
            raw = b""
            while piece := sock.recv(65536):
                raw += piece
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: gzip, chunked" in head
        size, _, rest = body.partition(b"\r\n")
        assert gzip.decompress(rest[: int(size, 16)]) == b"hello, gzip"
    finally:
        router.close()
        listener.close()
        backend.join(5)


# -- connections per client and under file-descriptor pressure ---------------------------


def test_client_over_its_connection_cap_is_refused_and_others_are_served(
    platform: Platform,
) -> None:
    backend = Backend("web.1", "127.0.0.1", platform.dyno_port)
    table = RouteTable("localhost", {"hello": AppRoute("hello", (backend,))})
    router = RouterThread(table, limits=Limits(client_connections=20))
    hog: list[socket.socket] = []
    try:
        for _ in range(40):
            hog.append(socket.create_connection(("127.0.0.1", router.port), 10, ("127.0.0.1", 0)))
        refused = []
        for sock in hog[20:]:
            sock.settimeout(5)
            refused.append(sock.recv(4096))
        assert all(r.startswith(b"HTTP/1.1 503") and b"Retry-After: 5" in r for r in refused)
        assert b"Too many connections from your address" in refused[0]
        # the first 20 are still open, and a client at another address is served at once
        status, _, body = _exchange(router.url, b"GET / HTTP/1.1\r\n" + HOST + b"\r\n", "127.0.0.2")
        assert (status, body) == (200, b"hello")
        hog[0].sendall(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
        assert _response(hog[0])[0] == 200
        app, line = router.wait_log(lambda line: "code=H22" in line)
        assert 'fwd="127.0.0.1"' in line and "cap per client" in line and app == ""
        assert not any("code=H10" in line for _, line in router.logs)
    finally:
        for sock in hog:
            sock.close()
        router.close()


def _low_file_limit() -> None:
    # soft below hard: the router raises it to the hard limit at start
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 160))


def test_oldest_idle_connections_are_shed_under_file_descriptor_pressure(
    platform: Platform,
) -> None:
    url, log = platform.router(
        "--client-connections", "0", name="router-fds", preexec_fn=_low_file_limit
    )
    assert "file limit 160: up to 60 client connections" in log.read_text()
    idle: list[socket.socket] = []
    try:
        for n in range(80):  # each asks once and then idles on keep-alive
            sock = socket.create_connection(("127.0.0.1", _port(url)), 10, (f"127.0.1.{n + 1}", 0))
            idle.append(sock)
            sock.sendall(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
            assert _response(sock)[0] == 200
        status, _, body = _exchange(url, b"GET / HTTP/1.1\r\n" + HOST + b"\r\n", "127.0.2.1")
        assert (status, body) == (200, b"hello")
        idle[0].settimeout(5)
        assert idle[0].recv(1) == b""  # the one idle longest was closed
        idle[-1].sendall(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")  # the newest still serves
        assert _response(idle[-1])[0] == 200
        text = wait_until(lambda: "Idle connections shed" in (t := log.read_text()) and t, 5)
        assert "near the router's file limit (nofile=160)" in text and "code=H10" not in text
    finally:
        for sock in idle:
            sock.close()
