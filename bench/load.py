"""The benchmarks' load generators, each run in a process of its own: ``python bench/load.py
SPEC`` prints one run's summary as JSON. Python's (closed loop or paced open loop, see
``bench/router.py``) and wrk's (closed loop, when it is installed), for the same summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import ssl
import subprocess
import sys
import time


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
            server_hostname=SECURE if self.tls else None,
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
SECURE = "secure.localhost"


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


def wrk(spec: dict) -> dict:
    """A closed-loop run of wrk (``apt-get install wrk``): its throughput and latencies."""
    binary = shutil.which("wrk")
    assert binary is not None
    headers = ["-H", f"Host: {spec['host']}"]
    headers += ["-H", "Connection: close"] if spec["close"] else []
    seconds = max(1, round(spec["seconds"]))
    command = [binary, "-t", "2", "-c", str(spec["connections"]), "-d", f"{seconds}s"]
    command += ["--latency", *headers, f"http://127.0.0.1:{spec['port']}/"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\b", out, re.M)
        if not match:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
        return float(match.group(1)) * scale

    def count(pattern: str) -> int:
        return sum(int(n) for n in re.findall(pattern, out))

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    errors = count(r"Non-2xx or 3xx responses: (\d+)")
    errors += count(r"(?:connect|read|write|timeout) (\d+)")
    return {
        "requests": int(done.group(1)) if done else 0,
        "errors": errors,
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
    }


def run(spec: dict) -> dict:
    """One run as ``spec`` says (``rate`` 0: saturation, else paced at ``rate``/s)."""
    if spec.get("wrk") and not spec["rate"] and not spec["body"] and not spec.get("tls"):
        return wrk(spec)
    return _loadgen(spec)


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
