"""A first deploy says "live" only once the router sends the app's requests to a dyno."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.config import Settings
from corral.deploy.routed import wait_until_routed
from corral.router.pages import FAILURES, render_page
from support.processes import free_port


class _Router(http.server.ThreadingHTTPServer):
    """Answers like corral's router: "no web dynos" for the first ``pending`` requests."""

    def __init__(self, pending: int) -> None:
        self.pending, self.hosts = pending, list[str]()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Router

    def do_GET(self) -> None:
        self.server.hosts.append(self.headers["Host"])
        if self.server.pending > 0:
            self.server.pending -= 1
            failure = FAILURES["no_dynos"]
            status, body = failure.status, render_page(failure, request_id="r1")
        else:
            status, body = 200, b"hello v1"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def router() -> Iterator[_Router]:
    server = _Router(pending=3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_waits_while_the_router_says_there_are_no_dynos(router: _Router, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, router_port=router.server_address[1])
    assert wait_until_routed(settings, "hello", patience=30) is True
    assert router.pending == 0 and router.hosts == ["hello.localhost"] * 4


def test_gives_up_after_its_patience(router: _Router, tmp_path: Path) -> None:
    router.pending = 10**6
    settings = Settings(home=tmp_path, router_port=router.server_address[1])
    assert wait_until_routed(settings, "hello", patience=0.05) is False


def test_no_router_on_the_loopback_means_no_wait(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, router_port=free_port())
    assert wait_until_routed(settings, "hello", patience=30) is True
