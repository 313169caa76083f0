"""The router as its own process (``python -m corral.router``) in front of real gunicorn dynos."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral.router import AppRoute, Backend, RouteTable, save_route_table
from support.processes import free_port
from support.wait import wait_for_http, wait_until

pytest.importorskip("gunicorn")
pytest.importorskip("flask")

pytestmark = pytest.mark.slow

APP = """
import os
import time
from flask import Flask, Response, request

app = Flask(__name__)


@app.get("/")
def index():
    return {
        "dyno": os.environ["DYNO"],
        "forwarded_for": request.headers.get("X-Forwarded-For"),
        "forwarded_proto": request.headers.get("X-Forwarded-Proto"),
        "request_id": request.headers.get("X-Request-Id"),
        "via": request.headers.get("Via"),
    }


@app.post("/upload")
def upload():
    total = 0
    while piece := request.stream.read(65536):
        total += len(piece)
    return {"bytes": total}


@app.get("/stream")
def stream():
    def events():
        for i in range(3):
            yield f"data: {i}\\n\\n"
            time.sleep(0.05)  # events spaced in time: the router must pass each one on
    return Response(events(), mimetype="text/event-stream")
"""


def _start(args: list[str], cwd: Path, env: dict[str, str], out: Path) -> subprocess.Popen:
    with open(out, "wb") as log:
        return subprocess.Popen(
            args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Two gunicorn dynos of app "hello" and a router process following a table file."""
    root = tmp_path_factory.mktemp("router-gunicorn")
    (root / "app.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN")}
    processes = []
    backends = []
    try:
        for n in (1, 2):
            port = free_port()
            dyno_env = {**env, "DYNO": f"web.{n}"}
            args = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}"]
            processes.append(_start([*args, "app:app"], root, dyno_env, root / f"web.{n}.log"))
            backends.append(Backend(f"web.{n}", "127.0.0.1", port))
        for backend, process in zip(backends, processes, strict=True):
            wait_for_http(f"http://127.0.0.1:{backend.port}/", process=process)
        table_path = root / "routes.json"
        table = RouteTable("localhost", {"hello": AppRoute("hello", tuple(backends))})
        save_route_table(table, table_path)
        port = free_port()
        router_args = [sys.executable, "-m", "corral.router", "--table", str(table_path)]
        router_args += ["--bind", f"127.0.0.1:{port}"]
        router = _start(router_args, root, env, root / "router.log")
        processes.append(router)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url, process=router)
        yield {"url": url, "table": table, "table_path": table_path, "root": root}
    finally:
        for process in processes:
            _stop(process)


def _poll_status(url: str, host: str, status: int, timeout: float = 5) -> httpx.Response:
    responses: list[httpx.Response] = []

    def answered() -> bool:
        responses[:] = [httpx.get(url, headers={"Host": host})]
        return responses[0].status_code == status

    with contextlib.suppress(AssertionError):  # the caller asserts on the last answer
        wait_until(answered, timeout, interval=0.05)
    return responses[0]


def test_requests_alternate_between_gunicorn_dynos(platform: dict) -> None:
    with httpx.Client(base_url=platform["url"], headers={"Host": "hello.localhost"}) as client:
        answers = [client.get("/").json() for _ in range(4)]
    dynos = [a["dyno"] for a in answers]
    assert sorted(dynos) == ["web.1", "web.1", "web.2", "web.2"] and dynos[0] != dynos[1]
    assert answers[0]["forwarded_for"] == "127.0.0.1"
    assert answers[0]["forwarded_proto"] == "http"
    assert answers[0]["via"] == "1.1 corral" and len(answers[0]["request_id"]) == 32


def test_router_logs_one_line_per_request_on_stdout(platform: dict) -> None:
    response = httpx.get(platform["url"] + "/?marker=1", headers={"Host": "hello.localhost"})
    request_id = response.headers["x-request-id"]
    log = platform["root"] / "router.log"
    wait_until(lambda: request_id in log.read_text(), 5, message="the request's log line")
    line = next(line for line in log.read_text().splitlines() if request_id in line)
    assert line.startswith("hello router: at=info method=GET path=/?marker=1")
    assert "status=200" in line


def test_chunked_upload_through_gunicorn(platform: dict) -> None:
    body = (b"x" * 65536 for _ in range(80))  # 5 MiB, sent chunked
    response = httpx.post(
        platform["url"] + "/upload", content=body, headers={"Host": "hello.localhost"}, timeout=30
    )
    assert response.json() == {"bytes": 80 * 65536}


def test_streamed_response_from_gunicorn(platform: dict) -> None:
    headers = {"Host": "hello.localhost"}
    with httpx.stream("GET", platform["url"] + "/stream", headers=headers) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines == ["data: 0", "data: 1", "data: 2"]


def test_router_follows_table_file_changes(platform: dict) -> None:
    url, path, table = platform["url"], platform["table_path"], platform["table"]
    assert httpx.get(url, headers={"Host": "www.hello.test"}).status_code == 404
    save_route_table(RouteTable(table.domain, table.apps, {"www.hello.test": "hello"}), path)
    assert _poll_status(url, "www.hello.test", 200).status_code == 200
    maintenance = {"hello": AppRoute("hello", table.apps["hello"].backends, maintenance=True)}
    save_route_table(RouteTable(table.domain, maintenance, {}), path)
    assert _poll_status(url, "hello.localhost", 503).status_code == 503
    save_route_table(table, path)
    assert _poll_status(url, "hello.localhost", 200).status_code == 200


def test_router_routes_by_a_replaced_table_from_the_next_request(platform: dict) -> None:
    # A deploy's cutover writes the table; no request after that goes by the old one.
    url, path, table = platform["url"], platform["table_path"], platform["table"]
    web1, web2 = table.apps["hello"].backends
    with httpx.Client(base_url=url, headers={"Host": "hello.localhost"}) as client:
        for n in range(10):
            backend = (web1, web2)[n % 2]
            apps = {"hello": AppRoute("hello", (backend,))}
            save_route_table(RouteTable("localhost", apps), path)
            for _ in range(3):
                assert client.get("/").json()["dyno"] == backend.dyno
    save_route_table(table, path)


def test_router_process_runs_on_uvloop(platform: dict) -> None:
    # uvloop roughly doubles what one router process carries; it is a dependency, so the
    # router process must not quietly fall back to asyncio's own loop.
    lines = (platform["root"] / "router.log").read_text().splitlines()
    assert any(line.startswith("router listening on") and "(uvloop;" in line for line in lines)
