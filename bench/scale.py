"""Scale benchmark: what an idle platform costs with 1 app and with N apps.

Run: ``.venv/bin/python bench/scale.py [--apps 100] [--idle 30]``. It starts a real
``corral server`` (as bench/deploy.py does), deploys one Flask + gunicorn app with
``git push``, measures, then deploys N - 1 more apps from the same source (so they share
one environment: after the first, no installer runs) and measures again. Each measure:

- memory (RSS and PSS, from ``/proc``) of the platform's parts: the server process
  (supervisor), the API, the streams service, the router, and the shims that hold each
  unit (with the shim zygote that forks them), per dyno shim; the dynos themselves
  (gunicorn) are the apps', listed apart;
- the platform's idle CPU over ``--idle`` seconds (server, API, streams, router, shims), as
  a percentage of one core;
- ``corral apps`` and ``corral ps`` latency (medians of 5);
- router throughput to one app (requests/s over ``--seconds`` of keep-alive requests from
  ``--clients`` threads; the Python client is the bottleneck well before the router, so
  compare the 1-app and N-app figures, not with other benchmarks).

As root it runs with ``--no-isolation``, so many apps need no system users; dynos then
still get kernel limits (so the supervisor polls no memory) unless ``--no-kernel-limits``,
which measures what a platform run by an ordinary user costs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy import Bench


def _platform_processes(bench: Bench) -> dict[str, list[psutil.Process]]:
    """The platform's processes by part, and the apps' dynos apart.

    A shim is exec'd (``runtime/shim.py`` in its command line) or forked by the home's
    shim zygote (named ``shim NAME``, with the zygote's command line); the zygote itself
    is counted with the shims, whose memory it holds for them.
    """
    parts: dict[str, list[psutil.Process]] = {
        "server": [], "api": [], "streams": [], "router": [], "shims": [], "zygote": [],
        "dynos": [],
    }  # fmt: skip
    server = psutil.Process(bench.server.pid)
    parts["server"].append(server)
    for process in psutil.process_iter(["cmdline", "name"]):
        try:  # a shim of a dyno on its way out may be gone already
            line = " ".join(process.info["cmdline"] or [])
            if str(bench.root) not in line:
                continue
            name = process.info["name"] or ""
            if "runtime/zygote.py" in line and not name.startswith("shim "):
                parts["zygote"].append(process)
                continue
            if "runtime/shim.py" not in line and not name.startswith("shim "):
                continue
            with_children = process.children(recursive=True)
        except psutil.Error:
            continue
        parts["shims"].append(process)
        part = "dynos"
        for unit in ("api", "streams", "router"):
            if f"--dyno {unit} " in line or name == f"shim {unit}":
                part = unit
        parts[part].extend(with_children)
    return parts


def _memory(processes: list[psutil.Process]) -> tuple[int, int]:
    """RSS and PSS in bytes, summed, from each process's ``/proc/PID/smaps_rollup``."""
    rss = pss = 0
    for process in processes:
        try:
            rollup = Path(f"/proc/{process.pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        fields = {key: value.split()[0] for key, _, value in (x.partition(":") for x in rollup)}
        rss += int(fields.get("Rss", 0)) * 1024
        pss += int(fields.get("Pss", 0)) * 1024
    return rss, pss


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _cli_latency(bench: Bench, *args: str) -> float:
    env = {**os.environ, "CORRAL_CREDENTIALS": str(bench.root / "credentials.json")}
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "corral", *args], env=env, check=True, capture_output=True
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _throughput(bench: Bench, app: str, clients: int, seconds: float) -> float:
    done = [0] * clients
    deadline = time.monotonic() + seconds

    def load(index: int) -> None:
        with httpx.Client(headers={"Host": f"{app}.localhost"}, timeout=10) as client:
            while time.monotonic() < deadline and done[index] < 1_000_000:
                client.get(f"http://127.0.0.1:{bench.port}/")
                done[index] += 1

    threads = [threading.Thread(target=load, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds


def measure(bench: Bench, apps: int, args: argparse.Namespace) -> None:
    time.sleep(3)  # the last deploy's old dynos drained
    parts = _platform_processes(bench)
    platform = [p for name, ps in parts.items() if name != "dynos" for p in ps]
    names = ("server", "api", "streams", "router", "shims", "zygote")
    before = {name: _cpu_seconds(parts[name]) for name in names}
    time.sleep(args.idle)
    by_part = {name: (_cpu_seconds(parts[name]) - before[name]) / args.idle * 100 for name in names}
    idle = sum(by_part.values())
    print(f"{apps} app(s), {len(parts['shims']) - 3} dyno(s):")
    for name in ("server", "api", "streams", "router", "shims", "zygote"):
        rss, pss = _memory(parts[name])
        print(f"  {name:8} RSS {rss >> 20:5} MB  PSS {pss >> 20:5} MB")
    shim_rss, shim_pss = _memory(parts["shims"] + parts["zygote"])
    count = max(len(parts["shims"]), 1)
    print(
        f"  per shim RSS {shim_rss / count / 2**20:5.1f} MB  PSS {shim_pss / count / 2**20:5.1f} MB"
        " (the zygote's share included)"
    )
    rss, pss = _memory(parts["dynos"])
    print(f"  dynos    RSS {rss >> 20:5} MB  PSS {pss >> 20:5} MB (the apps' own)")
    total_rss, total_pss = _memory(platform)
    print(f"  platform RSS {total_rss >> 20:5} MB  PSS {total_pss >> 20:5} MB")
    print(f"  platform idle CPU {idle:5.1f}% of a core over {args.idle:g} s")
    print("    " + ", ".join(f"{name} {share:.1f}%" for name, share in by_part.items()))
    print(f"  corral apps {_cli_latency(bench, 'apps') * 1000:5.0f} ms   "
          f"corral ps {_cli_latency(bench, 'ps', '-a', 'app0') * 1000:5.0f} ms")  # fmt: skip
    rate = _throughput(bench, "app0", args.clients, args.seconds)
    print(f"  router throughput to one app {rate:7.0f} req/s ({args.clients} clients)")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--no-kernel-limits", action="store_true", help="as root: poll memory, as without root"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the platform running afterwards, to profile"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill cleans up as Ctrl-C
    flags = ("--no-isolation",) if os.geteuid() == 0 else ()
    if args.no_kernel_limits:
        flags += ("--no-kernel-limits",)
    with tempfile.TemporaryDirectory(prefix="corral-bench-scale-") as tmp:
        bench = Bench(Path(tmp), *flags)
        try:
            repo = bench.new_app("app0")
            bench.push_until_served(repo, "start0")
            measure(bench, 1, args)
            started = time.monotonic()
            for i in range(1, args.apps):
                bench.push_until_served(bench.new_app(f"app{i}"), f"start{i}")
            took = time.monotonic() - started
            print(f"deployed {args.apps - 1} more apps in {took:.0f} s")
            measure(bench, args.apps, args)
            if args.keep:
                print(f"kept running: server pid {bench.server.pid}; Ctrl-C ends it", flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    bench.server.wait()  # Ctrl-C or kill ends it, and the platform with it
        finally:
            bench.close()


if __name__ == "__main__":
    main()
