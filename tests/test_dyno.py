"""Dyno processes: start under a shim, health checks, graceful and forced stops, identity."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import psutil
import pytest

from corral.runtime import dyno as dynos
from support.processes import base_environ, free_port, listening_ports
from support.wait import wait_until


def spec(tmp_path: Path, command: str, port: int | None = None) -> dynos.DynoSpec:
    env = {**base_environ(tmp_path), "PYTHONUNBUFFERED": "1"}
    if port:
        env["PORT"] = str(port)
    return dynos.DynoSpec("hello", "web.1", command, tmp_path, env, port)


def test_dyno_serves_passes_health_check_and_stops_gracefully(tmp_path: Path) -> None:
    port = free_port()
    command = f"exec {sys.executable} -m http.server $PORT --bind 127.0.0.1"
    proc, popen = dynos.start(spec(tmp_path, command, port), tmp_path / "logs", tmp_path / "run")
    try:
        wait_until(
            lambda: asyncio.run(dynos.healthy(port, "/")), 20, interval=0.05, message="healthy"
        )
        assert proc.alive() and proc.memory() > 1_000_000
    finally:
        asyncio.run(dynos.stop(proc, grace=10, popen=popen))
    assert not proc.alive()
    assert dynos.recorded_status(tmp_path / "run", "hello", "web.1", proc.pid) == 128 + 15
    assert not asyncio.run(dynos.healthy(port))


def test_health_check_fails_on_error_status(tmp_path: Path) -> None:
    port = free_port()
    command = f"exec {sys.executable} -m http.server $PORT --bind 127.0.0.1"
    proc, popen = dynos.start(spec(tmp_path, command, port), tmp_path / "logs", tmp_path / "run")
    try:
        wait_until(lambda: asyncio.run(dynos.healthy(port)))
        assert not asyncio.run(dynos.healthy(port, "/no-such-page"))
    finally:
        asyncio.run(dynos.stop(proc, grace=10, popen=popen))


SILENT = """
import socket, sys, time
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
held = [server.accept() for _ in range(50)]  # accepts, never answers: gunicorn's master alone
"""

ANSWERS = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(int(sys.argv[2]))
        self.end_headers()
HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_accepting_tcp_without_answering_http_is_not_healthy(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "silent.py").write_text(SILENT)
    command = f"exec {sys.executable} silent.py {port}"
    proc, popen = dynos.start(spec(tmp_path, command, port), tmp_path / "logs", tmp_path / "run")
    try:
        wait_until(
            lambda: port in listening_ports(psutil.Process(proc.pid)), message="the listener"
        )
        assert not asyncio.run(dynos.healthy(port, timeout=0.5))
    finally:
        asyncio.run(dynos.stop(proc, grace=10, popen=popen))


@pytest.mark.parametrize(("status", "healthy"), [(404, True), (302, True), (500, False)])
def test_root_answering_404_is_healthy_but_500_is_not(
    tmp_path: Path, status: int, healthy: bool
) -> None:
    (tmp_path / "answers.py").write_text(ANSWERS)
    port = free_port()
    command = f"exec {sys.executable} answers.py {port} {status}"
    proc, popen = dynos.start(spec(tmp_path, command, port), tmp_path / "logs", tmp_path / "run")
    try:
        wait_until(
            lambda: port in listening_ports(psutil.Process(proc.pid)), message="the listener"
        )
        assert asyncio.run(dynos.healthy(port)) is healthy, status
        # a declared health check path wants 2xx or 3xx
        assert asyncio.run(dynos.healthy(port, "/health")) is (status < 400), status
    finally:
        asyncio.run(dynos.stop(proc, grace=10, popen=popen))


def test_dyno_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    command = "trap '' TERM; echo ready; sleep 100"
    proc, popen = dynos.start(spec(tmp_path, command), tmp_path / "logs", tmp_path / "run")
    log = tmp_path / "logs" / "web.1.log"
    wait_until(lambda: log.exists() and "ready" in log.read_text())
    children = psutil.Process(proc.pid).children(recursive=True)
    started = time.monotonic()
    asyncio.run(dynos.stop(proc, grace=0.5, popen=popen))
    assert 0.5 <= time.monotonic() - started < 10
    assert not proc.alive()
    _, still_running = psutil.wait_procs(children, timeout=5)
    assert not still_running


def test_a_reused_pid_is_not_taken_for_the_dyno() -> None:
    me = psutil.Process()
    assert dynos.DynoProcess(me.pid, me.create_time()).alive()
    assert not dynos.DynoProcess(me.pid, me.create_time() - 100).alive()
