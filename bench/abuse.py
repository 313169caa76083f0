"""Abuse benchmark: what hostile clients cost a well-behaved one, with and without them.

Run: ``.venv/bin/python bench/abuse.py [--runs 3] [--seconds 5] [--slow-clients 200]
[--idle-connections 2000] [--slow-uploads 4]``. It starts a real ``corral server`` in a
temporary home (as ``bench/deploy.py`` does) and deploys a sync Flask app with one gunicorn
worker, then for each attack measures a well-behaved client (from 127.0.0.1, a request
every 20 ms for ``--seconds``) first alone, then while the attack runs from another
address (127.0.0.2, in a process of its own):

1. slow clients: ``--slow-clients`` connections post ``/login`` to the platform declaring
   ``Content-Length: 100000`` and sending a byte every 5 s; the client asks the API.
2. idle connections: ``--idle-connections`` keep-alive connections from one address, each
   asks once and then idles; the client asks the app.
3. slow uploads: ``--slow-uploads`` uploads to the app's one sync worker, a byte a second;
   the client asks the same app.

It prints the client's success rate and p50/p99 latency without and with each attack,
medians of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from deploy import Bench, git  # bench/deploy.py: a corral server in a temporary home

ATTACKER = "127.0.0.2"
APP = """from flask import Flask, request
app = Flask(__name__)

@app.get("/")
def index():
    return "{marker}"

@app.post("/upload")
def upload():
    return str(len(request.get_data()))
"""


# -- the attacks (each run in a process of its own) -------------------------------------------


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
    except OSError:
        return None


async def _slow_body(port: int, host: str, path: str, count: int, interval: float) -> None:
    """``count`` requests whose bodies come a byte every ``interval`` seconds."""
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100000\r\n"
    head += "Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    streams = [s for s in await asyncio.gather(*(_open(port) for _ in range(count))) if s]
    for _, writer in streams:
        writer.write(head.encode())
    print(json.dumps({"ready": len(streams)}), flush=True)
    while True:
        for _, writer in streams:
            if not writer.is_closing():
                writer.write(b"a")
        await asyncio.sleep(interval)


async def _idle(port: int, host: str, count: int) -> None:
    """``count`` keep-alive connections that ask once, then idle."""
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    async def one() -> asyncio.StreamWriter | None:
        opened = await _open(port)
        if opened is None:
            return None
        reader, writer = opened
        writer.write(request)
        try:
            answer = await asyncio.wait_for(reader.read(65536), 10)
        except (OSError, TimeoutError):
            answer = b""
        if answer.startswith(b"HTTP/1.1 200"):
            return writer  # held open, idle
        writer.close()  # refused (or failed): the attacker counts what it holds
        return None

    writers = []
    for start in range(0, count, 200):  # in batches: the attack, not a SYN flood
        writers += await asyncio.gather(*(one() for _ in range(min(200, count - start))))
    print(json.dumps({"ready": sum(w is not None for w in writers)}), flush=True)
    await asyncio.sleep(3600)


def _attack(spec: dict) -> None:
    kind, port, host = spec["kind"], spec["port"], spec["host"]
    if kind == "slow-clients":
        asyncio.run(_slow_body(port, host, "/login", spec["count"], 5.0))
    elif kind == "idle":
        asyncio.run(_idle(port, host, spec["count"]))
    else:
        asyncio.run(_slow_body(port, host, "/upload", spec["count"], 1.0))


# -- the well-behaved client ------------------------------------------------------------------


def _probe(port: int, host: str, path: str, seconds: float) -> dict:
    """A request every 20 ms for ``seconds``: success rate and latency of each."""
    latencies: list[float] = []
    ok = sent = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(headers={"Host": host}, timeout=5) as client:
        while time.monotonic() < deadline:
            sent += 1
            started = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                ok += client.get(f"http://127.0.0.1:{port}{path}").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(max(0.0, 0.02 - latencies[-1]))
    latencies.sort()
    return {
        "ok": ok / sent,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def _with_attack(spec: dict, probe) -> tuple[dict, int]:
    command = [sys.executable, __file__, "--attack", json.dumps(spec)]
    attack = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = attack.stdout.readline() if attack.stdout else ""
        if not line:
            raise SystemExit(f"the {spec['kind']} attack did not start")
        ready = json.loads(line)["ready"]
        return probe(), ready
    finally:
        attack.kill()
        attack.wait()


def _deploy_sync_app(bench: Bench) -> str:
    """The app under attack: one sync gunicorn worker with an upload route."""
    repo = bench.new_app("victim")
    (repo / "Procfile").write_text("web: gunicorn -w 1 -k sync app:app\n")
    (repo / "app.py").write_text(APP.replace("{marker}", "up"))
    git(repo, "commit", "-qam", "victim")
    git(repo, "push", "-q", "corral", "main")
    deadline = time.monotonic() + 300
    while not bench.serves("victim", "up"):
        if time.monotonic() > deadline:
            raise SystemExit("the victim app was never served")
        time.sleep(0.1)
    return "victim.localhost"


def main() -> None:
    """Start the platform, run each attack ``--runs`` times, print medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--slow-clients", type=int, default=200)
    parser.add_argument("--idle-connections", type=int, default=2000)
    parser.add_argument("--slow-uploads", type=int, default=4)
    parser.add_argument("--attack", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attack:
        _attack(json.loads(args.attack))
        return
    with tempfile.TemporaryDirectory(prefix="corral-bench-abuse-") as tmp:
        bench = Bench(Path(tmp))
        try:
            app = _deploy_sync_app(bench)
            attacks = [
                ("slow clients", "slow-clients", "localhost", args.slow_clients, "/api/v1/health"),
                ("idle connections", "idle", app, args.idle_connections, "/"),
                ("slow uploads", "slow-uploads", app, args.slow_uploads, "/"),
            ]
            results: dict[str, dict[str, list[dict]]] = {}
            for run in range(args.runs):
                for name, kind, host, count, path in attacks:
                    probe = functools.partial(_probe, bench.port, host, path, args.seconds)
                    alone = probe()
                    spec = {"kind": kind, "port": bench.port, "host": host, "count": count}
                    attacked, ready = _with_attack(spec, probe)
                    sides = results.setdefault(name, {"without": [], "with": []})
                    sides["without"].append(alone)
                    sides["with"].append(attacked)
                    print(
                        f"run {run + 1} {name:16}: without {_line(alone)} | with {_line(attacked)}"
                        f" ({ready} of {count} attack connections open)",
                        flush=True,
                    )
        finally:
            bench.close()
    print(f"\nwell-behaved client, medians of {args.runs} runs of {args.seconds:g} s each:")
    for name, sides in results.items():
        medians = {side: _medians(runs) for side, runs in sides.items()}
        print(f"  {name:16}: without {_line(medians['without'])} | with {_line(medians['with'])}")


def _medians(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def _line(result: dict) -> str:
    return f"{result['ok']:7.1%} ok, p50 {result['p50_ms']:7.1f} ms, p99 {result['p99_ms']:7.1f} ms"


if __name__ == "__main__":
    main()
