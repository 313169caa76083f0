"""Router benchmark: a gunicorn dyno served direct vs through the router, in the same run.

Run: ``.venv/bin/python bench/router.py [--runs 5] [--connections 32] [--requests 20000]
[--worker-class sync|gthread] [--close] [--body BYTES] [--https]``. It starts a hello-world WSGI app
under ``gunicorn -w 2`` (gunicorn comes from corral's ``test`` extra), the router as its own process
(``python -m corral.router``) in front of it, and each load run in a process of its own.
With ``--https`` the router serves TLS too (a self-signed certificate for the app's host,
chosen by SNI as ``corral server --https`` serves ACME ones) and the saturation phase
has a third side, ``https``: its figure is HTTPS/HTTP throughput through the router.

Two phases, direct and routed runs alternating in each, figures the medians of ``--runs``
runs per side, so a busy machine slows both sides alike:

1. saturation: ``--connections`` closed-loop keep-alive connections send as fast as they
   are answered. Its figure is throughput, router/direct (target >= 70%). Its latencies are
   printed too, but at saturation latency is just connections / throughput, so they mostly
   restate the throughput lost.
2. paced: an open-loop load at a fixed rate, ``--paced-load`` (default 50%) of the direct
   side's median saturation throughput, the same rate for both sides, for at most
   ``--paced-seconds`` and ``--requests`` requests. Each request's latency runs from the
   time the schedule said to send it to the end of its response, so a request queued behind
   a slow one is charged the wait (no coordinated omission). Its figure is the latency
   the router adds, router - direct, at p50 and p99 (target p99 <= 2 ms).

Clients keep connections alive where the server allows: the router does, ``gunicorn -k
sync`` answers ``Connection: close``, so each direct request includes a new connection, as
it would for any client of that server, and a routed one does not (the router connects to
the dyno instead). With ``--close`` every request asks for ``Connection: close`` on both
sides: like for like, each request pays for a new client connection either way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
APP = """
def app(environ, start_response):
    environ["wsgi.input"].read()
    body = b"Hello, world!\\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


# -- load generators (each run in its own process) ------------------------------------------


class _Client:
    """One keep-alive client connection; it reconnects when the server closes."""

    def __init__(self, port: int, request: bytes, tls: bool = False) -> None:
        self.port = port
        self.request = request
        self.tls = _client_tls() if tls else None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1",
            self.port,
            ssl=self.tls,
            server_hostname=_SECURE if self.tls else None,
        )

    async def exchange(self) -> bool:
        """Send the request and read the whole response; True if it was a 200."""
        close = True
        try:
            if self.writer is None:
                await self.connect()
            assert self.reader is not None and self.writer is not None
            self.writer.write(self.request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            await self.reader.readexactly(length)
            return head.startswith(b"HTTP/1.1 200")
        except (OSError, asyncio.IncompleteReadError):
            close = True
            return False
        finally:
            if close:
                self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _summary(latencies: list[float], errors: int, elapsed: float, **extra: float) -> dict:
    latencies.sort()
    count = len(latencies)
    return {
        "requests": count,
        "errors": errors,
        "rps": count / elapsed,
        "p50_ms": latencies[count // 2] * 1000 if count else float("nan"),
        "p99_ms": latencies[int(count * 0.99)] * 1000 if count else float("nan"),
        **extra,
    }


#: The app served over HTTPS in the bench (the HTTP side's host has no certificate, so the
#: router serves it instead of redirecting it to HTTPS).
_SECURE = "secure.localhost"


def _client_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # our own test cert
    return context


async def _saturate(
    port: int, request: bytes, connections: int, requests: int, seconds: float, tls: bool = False
):
    """Closed loop: each connection sends its next request as soon as it has an answer."""
    budget = [requests]
    latencies: list[float] = []
    errors = [0]
    started = time.perf_counter()
    stop_at = started + seconds

    async def connection() -> None:
        client = _Client(port, request, tls)
        while budget[0] > 0 and time.perf_counter() < stop_at:
            budget[0] -= 1
            sent = time.perf_counter()
            if not await client.exchange():
                errors[0] += 1
            latencies.append(time.perf_counter() - sent)
        client.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return _summary(latencies, errors[0], time.perf_counter() - started)


async def _pace(
    port: int, request: bytes, connections: int, rate: float, requests: int, seconds: float
):
    """Open loop: request ``i`` is due at ``i / rate``; its latency counts from then."""
    due_times: asyncio.Queue[float] = asyncio.Queue()
    latencies: list[float] = []
    errors = [0]

    async def connection() -> None:
        # Connected on its first request, not ahead: a sync worker that accepted an idle
        # connection would wait on it while requests queue behind it on others.
        client = _Client(port, request)
        while True:
            due = await due_times.get()
            ok = await client.exchange()
            latencies.append(time.perf_counter() - due)
            errors[0] += not ok
            due_times.task_done()

    workers = [asyncio.ensure_future(connection()) for _ in range(connections)]
    count = min(requests, int(rate * seconds))
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due_times.put_nowait(due)
    scheduled = time.perf_counter() - start
    # Bounded: what is still unanswered 10 s after the last send is reported as such.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(due_times.join(), timeout=10)
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    answered = len(latencies)
    return _summary(
        latencies, errors[0], scheduled, offered=count / scheduled, unanswered=count - answered
    )


def _loadgen(spec: dict) -> dict:
    close = "Connection: close\r\n" if spec["close"] else ""
    if spec["body"]:
        length = f"Content-Length: {spec['body']}\r\n"
        request = f"POST / HTTP/1.1\r\nHost: {spec['host']}\r\n{close}{length}\r\n".encode()
        request += b"x" * spec["body"]
    else:
        request = f"GET / HTTP/1.1\r\nHost: {spec['host']}\r\n{close}\r\n".encode()
    port, connections = spec["port"], spec["connections"]
    if spec["rate"]:
        load = _pace(port, request, connections, spec["rate"], spec["requests"], spec["seconds"])
    else:
        load = _saturate(
            port, request, connections, spec["requests"], spec["seconds"], spec.get("tls", False)
        )
    return asyncio.run(load)


# -- orchestration --------------------------------------------------------------------------


def _self_signed(root: Path, host: str) -> None:
    """A self-signed certificate for ``host`` where the router's TLS looks (certs/live)."""
    from corral.router.tls import CertEntry, CertLayout, save_index, self_signed

    cert, key = self_signed([host], days=1)
    layout = CertLayout(root)
    layout.prepare()
    layout.host_pem(host).write_bytes(key + cert)
    save_index(layout, {host: CertEntry("bench")})


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


def _run_load(
    port: int,
    connections: int,
    requests: int,
    seconds: float,
    rate: float,
    close: bool,
    body: int = 0,
    tls: bool = False,
) -> dict:
    """One load run in a fresh process (``rate`` 0: saturation, else paced at ``rate``/s)."""
    host = _SECURE if tls else "hello.localhost"
    spec = {"port": port, "host": host, "connections": connections, "tls": tls}
    spec |= {"requests": requests, "seconds": seconds, "rate": rate, "close": close, "body": body}
    command = [sys.executable, __file__, "--loadgen", json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return json.loads(result.stdout)


def _phase(name: str, targets: dict[str, int], runs: int, load) -> dict[str, list[dict]]:
    """``runs`` runs per side, alternating which side goes first."""
    results: dict[str, list[dict]] = {side: [] for side in targets}
    for run in range(runs):
        sides = list(targets)
        order = sides[run % len(sides) :] + sides[: run % len(sides)]
        for side in order:
            result = load(targets[side])
            results[side].append(result)
            extra = f", {result['unanswered']} unanswered" if result.get("unanswered") else ""
            print(
                f"{name} run {run + 1} {side:6}: {result['rps']:6.0f} req/s  "
                f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                f"({result['requests']} requests, {result['errors']} errors{extra})",
                flush=True,
            )
    return results


def _median(results: dict[str, list[dict]], side: str, key: str) -> float:
    return statistics.median(r[key] for r in results[side])


def _print_sides(results: dict[str, list[dict]]) -> None:
    for side in results:
        print(
            f"    {side:6}: {_median(results, side, 'rps'):6.0f} req/s  "
            f"p50 {_median(results, side, 'p50_ms'):6.2f} ms  "
            f"p99 {_median(results, side, 'p99_ms'):6.2f} ms"
        )


def _load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    """Start the dyno and the router, run both phases, print medians and the router's cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per side and phase")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20000, help="per run (upper bound)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per saturation run (bound)")
    parser.add_argument("--paced-load", type=float, default=0.5, help="of direct throughput")
    parser.add_argument("--paced-seconds", type=float, default=5.0, help="per paced run")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class")
    parser.add_argument("--close", action="store_true", help="a new connection per request")
    parser.add_argument("--body", type=int, default=0, help="POST bodies of BYTES (0: GET)")
    parser.add_argument("--https", action="store_true", help="HTTPS through the router too")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        print(json.dumps(_loadgen(json.loads(args.loadgen))))
        return

    sys.path.insert(0, str(SRC))
    from corral.router.table import AppRoute, Backend, RouteTable, save_route_table

    load_before = _load_average()
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
            backends = (Backend("web.1", "127.0.0.1", dyno_port),)
            apps = {"hello": AppRoute("hello", backends), "secure": AppRoute("secure", backends)}
            table = RouteTable("localhost", apps)
            save_route_table(table, root / "routes.json")
            router = [sys.executable, "-m", "corral.router", "--table", str(root / "routes.json")]
            router += ["--bind", f"127.0.0.1:{router_port}"]
            https_port = _free_port()
            if args.https:
                _self_signed(root / "certs", _SECURE)
                router += ["--certs", str(root / "certs")]
                router += ["--https-bind", f"127.0.0.1:{https_port}"]
            processes.append(_start(router, root))
            _wait_port(dyno_port, processes[0])
            _wait_port(router_port, processes[1])
            targets = {"direct": dyno_port, "router": router_port}
            if args.https:
                _wait_port(https_port, processes[1])
                targets["https"] = https_port
            warm = (router_port, args.connections, 2000, args.seconds, 0, args.close, args.body)
            _run_load(*warm)
            saturation = _phase(
                "saturation",
                targets,
                args.runs,
                lambda port: _run_load(
                    port, args.connections, args.requests, args.seconds, 0, args.close,
                    args.body, port == https_port and args.https,
                ),
            )  # fmt: skip
            targets.pop("https", None)  # paced: the router's latency over HTTP, as before
            rate = args.paced_load * _median(saturation, "direct", "rps")
            paced = _phase(
                "paced",
                targets,
                args.runs,
                lambda port: _run_load(
                    port,
                    args.connections,
                    args.requests,
                    args.paced_seconds,
                    rate,
                    args.close,
                    args.body,
                ),
            )
        finally:
            for process in processes:
                _stop(process)

    def added(results: dict[str, list[dict]], key: str) -> float:
        return _median(results, "router", key) - _median(results, "direct", key)

    ratio = _median(saturation, "router", "rps") / _median(saturation, "direct", "rps")
    print(
        f"\ngunicorn -w 2 -k {args.worker_class}{', --close' if args.close else ''}"
        f"{f', POST {args.body} bytes' if args.body else ''}, "
        f"medians of {args.runs} runs per side, "
        f"load average {load_before} before, {_load_average()} after (1/5/15 min)"
    )
    print(f"  saturation, {args.connections} closed-loop connections:")
    _print_sides(saturation)
    print(f"    router/direct throughput: {ratio:.0%} (target >= 70%)")
    pairs = zip(saturation["direct"], saturation["router"], strict=True)
    spread = " ".join(f"{r['rps'] / d['rps']:.0%}" for d, r in pairs)
    print(f"    router/direct, run by run: {spread}")
    if args.https:
        tls = _median(saturation, "https", "rps") / _median(saturation, "router", "rps")
        print(f"    https/http through the router: {tls:.0%} of the plain HTTP throughput")
    print(
        f"    latency router - direct: p50 {added(saturation, 'p50_ms'):+.2f} ms, "
        f"p99 {added(saturation, 'p99_ms'):+.2f} ms (queueing at saturation: follows throughput)"
    )
    print(
        f"  paced, open loop at {rate:.0f} req/s ({args.paced_load:.0%} of direct saturation), "
        f"latency from each request's scheduled send:"
    )
    _print_sides(paced)
    print(
        f"    latency added by the router: p50 {added(paced, 'p50_ms'):+.2f} ms, "
        f"p99 {added(paced, 'p99_ms'):+.2f} ms (target p99 <= 2 ms)"
    )
    pairs = zip(paced["direct"], paced["router"], strict=True)
    spread = " ".join(f"{r['p99_ms'] - d['p99_ms']:+.2f}" for d, r in pairs)
    print(f"    p99 added, run by run (how much the machine's noise moves it): {spread} ms")


if __name__ == "__main__":
    main()
