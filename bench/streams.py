"""Streams benchmark: a plain API request's latency with 0 and with 100 open log streams.

Run: ``.venv/bin/python bench/streams.py [--streams 100] [--requests 50]``. It starts a
real ``corral server`` in a temporary home, creates an app, and times ``--requests``
``GET /api/v1/apps`` through the router (one keep-alive client, 5 s timeout each): first
with no stream open, then with ``--streams`` open streams (half ``logs?tail=1`` as
``corral logs -t`` reads, half the dashboard's live-log events), then again once those
clients have hung up. It prints the success rate, median, p99 and max of each phase, and
how long the streams took to open. Target: p99 under 1 s with 100 streams open.

The streams are sent without waiting for their answers, so the run also works against a
corral whose API serves streams itself (there the requests beyond its threads wait).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def start(home: Path, port: int) -> subprocess.Popen:
    """A ``corral server`` on ``port``, once its admin token is written and it answers."""
    env = {**os.environ, "CORRAL_CREDENTIALS": str(home.parent / "credentials.json")}
    env.pop("CORRAL_HOME", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "corral", "server", "--home", str(home),
         "--bind", f"127.0.0.1:{port}", "--boot-timeout", "30"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("corral server exited while starting")
        try:
            healthy = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).is_success
        except httpx.TransportError:
            healthy = False
        if healthy and (home / "admin-token").exists():
            return server
        time.sleep(0.2)
    raise SystemExit("corral server did not start within 60 s")


def wait_for_streams_route(home: Path) -> None:
    """Wait (up to 10 s) until the route table sends streams to the streams service, and
    the router's next reload (every 0.2 s); a corral without that service waits it out."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        table = json.loads((home / "run" / "routes.json").read_text())
        if table["apps"]["corral"].get("streams"):
            break
        time.sleep(0.1)
    time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_cookie(base: str, token: str) -> str:
    """The ``Cookie`` header of a dashboard session signed in with ``token``."""
    with httpx.Client(base_url=base, timeout=10) as client:
        form = client.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf is not None, "no CSRF field on the login page"
        client.post("/login", data={"csrf_token": csrf.group(1), "token": token})
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def open_streams(port: int, count: int, token: str, cookie: str) -> list[socket.socket]:
    """``count`` streams of app ``bench``, half log tails and half dashboard events."""
    socks = []
    for index in range(count):
        if index % 2 == 0:
            target, header = "/api/v1/apps/bench/logs?tail=1", f"Authorization: Bearer {token}"
        else:
            target, header = "/apps/bench/logs/stream", f"Cookie: {cookie}"
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n{header}\r\n\r\n".encode())
        socks.append(sock)
    return socks


def answered(socks: list[socket.socket], within: float) -> int:
    """How many of the streams have sent their response head within ``within`` seconds."""
    deadline = time.monotonic() + within
    count = 0
    for sock in socks:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        with contextlib.suppress(OSError):
            count += sock.recv(65536).startswith(b"HTTP/1.1 200")
    return count


def phase(base: str, token: str, requests: int) -> dict[str, float]:
    """Success rate and latency (ms) of ``requests`` plain API requests, one at a time."""
    times, ok = [], 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=5) as client:
        for _ in range(requests):
            started = time.perf_counter()
            with contextlib.suppress(httpx.TransportError):
                ok += client.get("/api/v1/apps").status_code == 200
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "ok": 100 * ok / requests,
        "p50": statistics.median(times),
        "p99": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        "max": times[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        home, port = Path(tmp) / "home", free_port()
        server = start(home, port)
        try:
            base = f"http://localhost:{port}"
            token = (home / "admin-token").read_text().strip()
            httpx.post(f"{base}/api/v1/apps", json={"name": "bench"},
                       headers={"Authorization": f"Bearer {token}"}).raise_for_status()  # fmt: skip
            cookie = session_cookie(base, token)
            wait_for_streams_route(home)
            results = {"0 streams": phase(base, token, args.requests)}
            started = time.perf_counter()
            socks = open_streams(port, args.streams, token, cookie)
            opened = answered(socks, within=10)
            open_s = time.perf_counter() - started
            results[f"{args.streams} streams"] = phase(base, token, args.requests)
            for sock in socks:
                sock.close()
            results["after they left"] = phase(base, token, args.requests)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)
    print(f"streams answered: {opened} of {args.streams} within 10 s ({open_s:.2f} s)")
    print(f"{'GET /api/v1/apps':<18} {'ok %':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, r in results.items():
        print(f"{name:<18} {r['ok']:>6.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f}")


if __name__ == "__main__":
    main()
