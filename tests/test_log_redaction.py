"""A token sent in a URL never reaches the platform's logs: through a real `corral server`,
the router's and the API's request lines say REDACTED where the secret was."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from support.server import Server
from support.wait import wait_until

pytestmark = pytest.mark.slow

SECRET = "corral_leaked_9f8e7d6c5b4a"


def _logged(logs: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in logs.rglob("*") if path.is_file()}


def test_credentials_in_urls_never_reach_any_log_file(server: Server) -> None:
    base = f"http://localhost:{server.port}"
    assert httpx.get(f"{base}/api/v1/apps?token={SECRET}").status_code == 401
    httpx.get(
        f"{base}/api/v1/apps?n=1&access_token={SECRET}",
        headers={"Referer": f"http://example.com/page?api_key={SECRET}"},
    )
    httpx.get(f"{base}/api/v1/health?next=%2Flogin%3Fpassword%3D{SECRET}")
    httpx.get(f"http://corral:{SECRET}@localhost:{server.port}/git/nope.git/info/refs")
    httpx.get(f"http://127.0.0.1:{server.port}/?sig={SECRET}", headers={"Host": "nope.localhost"})
    # straight to the API's gunicorn, which logs a request line it cannot parse
    with server.api as api:
        [api_port] = [d["port"] for d in api.get("/platform/dynos").json() if d["name"] == "api"]
    for raw in (f"GET /x?token={SECRET}\r\n\r\n", f"GET /y?key={SECRET} HTTP/9\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", api_port), timeout=10) as sock:
            sock.sendall(raw.encode())
            assert sock.recv(100).startswith(b"HTTP/1.1 400")
    logs = server.home / "logs"

    def redacted_everywhere() -> bool:
        logged = _logged(logs)
        api = logged.get(logs / "corral" / "api.log", b"")
        router = logged.get(logs / "corral" / "router.log", b"")
        unrouted = logged.get(logs / "_unrouted" / "router.log", b"")
        return (
            b"/api/v1/health?next=/login?password=REDACTED" in api
            and b"'GET /x?token=REDACTED" in api
            and b"token=REDACTED" in router
            and b"sig=REDACTED" in unrouted
        )

    wait_until(redacted_everywhere, timeout=20, interval=0.1, message="the redacted lines")
    leaks = [str(path) for path, text in _logged(logs).items() if SECRET.encode() in text]
    assert leaks == []
