"""Long-lived streams (log tails, the dashboard's live logs) on a real `corral server`.

They are served by the platform's streams service, not by the API's 16 gunicorn threads:
many open streams leave the API answering, streams a client leaves are freed at once,
and a stream whose token is deleted ends within a few seconds.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest

from corral.config import Settings
from corral.store import Store
from support.dashboard import csrf_of
from support.server import Server
from support.wait import wait_until

pytestmark = pytest.mark.slow

#: More streams of each kind than the API has threads (2 workers x 8).
STREAMS = 40


def open_stream(server: Server, target: str, header: str) -> socket.socket:
    """Send ``GET target`` through the router with one extra header; the open socket."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n{header}\r\n\r\n".encode())
    return sock


def read_head(sock: socket.socket) -> bytes:
    """The response head (and whatever body came with it) a stream started with."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"the stream closed before its head: {data!r}"
        data += piece
    return data


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the stream sends until its last chunk (its socket has a timeout)."""
    data = b""
    # the chunk before the last may have come with the head already
    while not (b"\r\n" + data).endswith(b"\r\n0\r\n\r\n"):
        piece = sock.recv(65536)
        assert piece, f"the stream broke off instead of ending: {data!r}"
        data += piece
    return data


def plain_request_seconds(server: Server) -> float:
    """How long ``GET /api/v1/apps`` takes through the router (must answer 200)."""
    started = time.monotonic()
    response = server.api.get("/apps", timeout=30)
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def session_cookie(server: Server, secret: str) -> str:
    """A ``Cookie`` header of a dashboard session signed in with ``secret``."""
    with httpx.Client(base_url=f"http://localhost:{server.port}", timeout=30) as client:
        form = client.get("/login")
        signed_in = client.post("/login", data={"csrf_token": csrf_of(form.text), "token": secret})
        assert signed_in.status_code == 302, signed_in.text
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def streams_port(server: Server) -> int:
    """The port of the streams service, once the router sends streams to it (a fresh
    platform's route table gets it when the service is up; the router reads it soon after)."""

    def routed() -> bool:
        server.api.get("/apps/probe/logs", params={"n": "1"})
        log = (server.home / "logs" / "corral" / "router.log").read_text()
        return any("path=/api/v1/apps/probe/logs" in line and "dyno=streams" in line
                   for line in log.splitlines())  # fmt: skip

    wait_until(routed, message="the router to send log reads to the streams service")
    table = json.loads((server.home / "run" / "routes.json").read_text())
    return table["apps"]["corral"]["streams"][0]["port"]


def open_streams(server: Server) -> int:
    """How many streams the streams service holds open now (asked on its own port)."""
    return httpx.get(f"http://127.0.0.1:{streams_port(server)}/health", timeout=5).json()["open"]


@contextmanager
def many_streams(server: Server, app: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` log tails and ``count`` dashboard event streams of ``app``, all started."""
    bearer = f"Authorization: Bearer {server.token}"
    cookie = f"Cookie: {session_cookie(server, server.token)}"
    assert open_streams(server) == 0
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            for target, header in (
                (f"/api/v1/apps/{app}/logs?tail=1", bearer),
                (f"/apps/{app}/logs/stream", cookie),
            ):
                sock = stack.enter_context(open_stream(server, target, header))
                socks.append(sock)
        for sock in socks:
            assert read_head(sock).startswith(b"HTTP/1.1 200 "), "a stream was refused"
        yield socks


def test_many_open_log_streams_leave_the_api_answering(server: Server) -> None:
    server.api.post("/apps", json={"name": "chatty"}).raise_for_status()
    with many_streams(server, "chatty", STREAMS):
        assert open_streams(server) == 2 * STREAMS
        assert plain_request_seconds(server) < 1.0
        # and the streams still flow: a request to the app writes a router line to its log
        httpx.get(f"http://127.0.0.1:{server.port}/", headers={"Host": "chatty.localhost"})
        wait_until(
            lambda: (server.home / "logs" / "chatty" / "router.log").exists(),
            message="the router's line for chatty",
        )


def test_streams_their_clients_close_are_freed_at_once(server: Server) -> None:
    server.api.post("/apps", json={"name": "quiet"}).raise_for_status()
    with many_streams(server, "quiet", STREAMS):
        assert open_streams(server) == 2 * STREAMS
    # no line is written meanwhile: the router notices the hang-ups, not a failed write
    wait_until(lambda: open_streams(server) == 0, timeout=2, message="every stream freed")
    assert plain_request_seconds(server) < 1.0


def test_deleting_a_token_ends_its_open_streams(server: Server) -> None:
    server.api.post("/apps", json={"name": "revoked"}).raise_for_status()
    with Store.for_settings(Settings.load(server.home)) as store:
        token, secret = store.create_token("short-lived")
        assert open_streams(server) == 0
        cookie = f"Cookie: {session_cookie(server, secret)}"
        kept = open_stream(
            server, "/api/v1/apps/revoked/logs?tail=1", f"Authorization: Bearer {server.token}"
        )
        tail = open_stream(
            server, "/api/v1/apps/revoked/logs?tail=1", f"Authorization: Bearer {secret}"
        )
        events = open_stream(server, "/apps/revoked/logs/stream", cookie)
        with kept, tail, events:
            for sock in (kept, tail, events):
                assert read_head(sock).startswith(b"HTTP/1.1 200 ")
            store.delete_token(token.id)
            deleted = time.monotonic()
            rest = read_to_end(tail)
            read_to_end(events)
            assert time.monotonic() - deleted < 8
            assert b"this stream's token was revoked" in rest
            assert open_streams(server) == 1  # the admin token's tail goes on
    again = httpx.get(
        f"http://localhost:{server.port}/api/v1/apps/revoked/logs",
        params={"tail": "1"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert again.status_code == 401 and again.json()["id"] == "unauthorized"


def test_log_reads_through_the_streams_service_answer_as_the_api_did(server: Server) -> None:
    server.api.post("/apps", json={"name": "plain"}).raise_for_status()
    url = f"http://localhost:{server.port}/api/v1/apps"
    bearer = {"Authorization": f"Bearer {server.token}"}
    unsigned = httpx.get(f"{url}/plain/logs", params={"tail": "1"})
    assert unsigned.status_code == 401
    assert unsigned.headers["WWW-Authenticate"] == 'Bearer realm="corral"'
    missing = httpx.get(f"{url}/nosuch/logs", params={"tail": "1"}, headers=bearer)
    assert missing.status_code == 404 and "No app named 'nosuch'" in missing.json()["message"]
    bad = httpx.get(f"{url}/plain/logs", params={"n": "0"}, headers=bearer)
    assert bad.status_code == 400 and bad.json()["id"] == "bad_request"
    recent = httpx.get(f"{url}/plain/logs", params={"n": "5"}, headers=bearer)
    assert recent.status_code == 200 and recent.headers["content-type"].startswith("text/plain")
    signed_out = httpx.get(f"http://localhost:{server.port}/apps/plain/logs/stream")
    assert signed_out.status_code == 401 and "Sign in" in signed_out.text
