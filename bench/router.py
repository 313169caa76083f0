"""Router benchmark: requests/s and latency of a gunicorn dyno, direct vs through the router.

Run: ``.venv/bin/python bench/router.py [--runs 5] [--connections 32] [--requests 20000]
[--worker-class sync|gthread]``. It starts a hello-world WSGI app under ``gunicorn -w 2``
(gunicorn comes from corral's ``test`` extra), the router as its own process
(``python -m corral.router``) in front of it, and a keep-alive load generator in another
process. Direct and routed runs alternate; the figures are medians of ``--runs`` runs each,
so a busy machine slows both sides alike. Targets: router >= 70% of direct throughput,
p99 added <= 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
APP = """
def app(environ, start_response):
    body = b"Hello, world!\\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


# -- load generator (runs in its own process) -----------------------------------------------


async def _worker(
    port: int, request: bytes, stop_at: float, budget: list[int], latencies: list[float]
) -> int:
    """One client connection sending ``request`` until the shared budget or time runs out."""
    errors = 0
    reader = writer = None
    while budget[0] > 0 and time.perf_counter() < stop_at:
        budget[0] -= 1
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            close = True
        latencies.append(time.perf_counter() - started)
        if close and writer is not None:
            writer.close()
            writer = reader = None
    if writer is not None:
        writer.close()
    return errors


async def _load(port: int, host: str, connections: int, requests: int, seconds: float) -> dict:
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    budget = [requests]
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + seconds
    errors = await asyncio.gather(
        *(_worker(port, request, stop_at, budget, latencies) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": sum(errors),
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


# -- orchestration --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[:4]} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listened on port {port} within {timeout}s")


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _run_load(port: int, host: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--loadgen", str(port), host]
    command += [str(args.connections), str(args.requests), str(args.seconds)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 30)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return json.loads(result.stdout)


def main() -> None:
    """Start the dyno and the router, alternate direct and routed runs, print medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20000, help="per run (upper bound)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per run (upper bound)")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class")
    parser.add_argument("--loadgen", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        port, host, conns, count, seconds = args.loadgen
        result = asyncio.run(_load(int(port), host, int(conns), int(count), float(seconds)))
        print(json.dumps(result))
        return

    sys.path.insert(0, str(SRC))
    from corral.router.table import AppRoute, Backend, RouteTable, save_route_table

    processes = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "app.py").write_text(APP)
        dyno_port, router_port = _free_port(), _free_port()
        try:
            gunicorn = [sys.executable, "-m", "gunicorn", "-w", "2", "-k", args.worker_class]
            gunicorn += ["--threads", "4"] if args.worker_class == "gthread" else []
            gunicorn += ["-b", f"127.0.0.1:{dyno_port}", "app:app"]
            processes.append(_start(gunicorn, root))
            table = RouteTable(
                "localhost",
                {"hello": AppRoute("hello", (Backend("web.1", "127.0.0.1", dyno_port),))},
            )
            save_route_table(table, root / "routes.json")
            router = [sys.executable, "-m", "corral.router", "--table", str(root / "routes.json")]
            router += ["--bind", f"127.0.0.1:{router_port}"]
            processes.append(_start(router, root))
            _wait_port(dyno_port, processes[0])
            _wait_port(router_port, processes[1])
            targets = {"direct": dyno_port, "router": router_port}
            results: dict[str, list[dict]] = {"direct": [], "router": []}
            _run_load(
                router_port,
                "hello.localhost",
                argparse.Namespace(**{**vars(args), "requests": 2000}),
            )
            for run in range(args.runs):
                order = ("direct", "router") if run % 2 == 0 else ("router", "direct")
                for name in order:
                    result = _run_load(targets[name], "hello.localhost", args)
                    results[name].append(result)
                    print(
                        f"run {run + 1} {name:6}: {result['rps']:8.0f} req/s  "
                        f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                        f"({result['requests']} requests, {result['errors']} errors)"
                    )
        finally:
            for process in processes:
                _stop(process)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    setup = f"gunicorn -w 2 -k {args.worker_class}, {args.connections} connections"
    print(f"\n{setup}, medians of {args.runs} runs:")
    for name in ("direct", "router"):
        print(
            f"  {name:6}: {median(name, 'rps'):8.0f} req/s  p50 {median(name, 'p50_ms'):6.2f} ms  "
            f"p99 {median(name, 'p99_ms'):6.2f} ms"
        )
    ratio = median("router", "rps") / median("direct", "rps")
    added = median("router", "p99_ms") - median("direct", "p99_ms")
    print(f"  router/direct throughput: {ratio:.0%} (target >= 70%)")
    print(f"  p99 added by the router: {added:+.2f} ms (target <= 2 ms)")


if __name__ == "__main__":
    main()
