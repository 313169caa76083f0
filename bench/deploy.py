"""Deploy benchmark: git push to serving, first deploy and code-only redeploys, and zero
downtime under load.

Run: ``.venv/bin/python bench/deploy.py [--runs 5] [--redeploys 20] [--quick [--against
SRC]]``. It starts a real
``corral server`` on a free loopback port in a temporary home and pushes a Flask +
gunicorn app with real git. Times run from the start of ``git push`` until the router
serves the new code (medians over ``--runs``; first deploys each use a new app, so
they include building a new environment from a warm cache). Then it keeps a request
loop running through the router during ``--redeploys`` code-only redeploys and counts
failed requests (the target is 0).

Each code-only redeploy is also broken down (medians, seconds from the start of ``git
push``): the first ``remote:`` line the pusher sees; the release recorded (its
``created_at`` in the store); the verdict committed (the supervisor's ``Release vN is
live`` log line, written right after it); the verdict relayed (the pusher sees
``-----> Released``); ``git push`` returned; the new code served through the router.
``--quick`` measures only that breakdown (no first deploys, no load, no second server);
``--quick --against OTHER/src`` also measures another tree's code (a baseline, e.g. ``git
archive main | tar -x -C /tmp/base``), alternating two servers of each, and prints both
with the ratio of push -> served.

As root the server isolates apps (each its own user, a cgroup per dyno where the host has
cgroups, firewall rules where it has nftables); the bench then also times code-only
redeploys on a second server started with ``--no-isolation --no-kernel-limits``, in the
same run, and prints the ratio (target: under 1.10). The apps' users it made (named
``cb<hex>-<app>``) are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import httpx

APP = """import os
from flask import Flask
app = Flask(__name__)

@app.get("/")
def index():
    return "{marker}"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
        cwd=repo, check=True, capture_output=True, timeout=600,
    )  # fmt: skip


@dataclass(frozen=True)
class Breakdown:
    """Seconds from the start of ``git push`` to each stage of one deploy."""

    first_remote_line: float
    release_recorded: float
    verdict_committed: float
    verdict_relayed: float
    push_returned: float
    served: float


def print_breakdown(runs: list[Breakdown], baseline: list[Breakdown] | None = None) -> None:
    """The median of each stage over ``runs`` and its step from the stage before; beside
    them, with ``baseline``, the baseline's and the ratio of the steps."""
    print(f"  code-only redeploy, breakdown (median of {len(runs)}; s from push start)")
    if baseline:
        print(f"    {'':<22} {'baseline':>16}   {'this tree':>16}   step ratio")
    before = {"runs": 0.0, "baseline": 0.0}
    for field in fields(Breakdown):
        label = field.name.replace("_", " ")
        columns, steps = [], []
        for name, group in (("baseline", baseline), ("runs", runs)):
            if not group:
                continue
            value = statistics.median(getattr(run, field.name) for run in group)
            steps.append(value - before[name])
            columns.append(f"{value:6.3f} (+{steps[-1]:6.3f})")
            before[name] = value
        ratio = f"   {steps[1] / steps[0]:6.2f}" if len(steps) == 2 and steps[0] > 0 else ""
        print(f"    {label:<22} {'   '.join(columns)}{ratio}")


class Bench:
    """A `corral server` in a temporary home, and helpers to push to it."""

    def __init__(self, root: Path, *flags: str, source: Path | None = None) -> None:
        """``source``: run the server (and all it starts) from that ``src`` directory."""
        self.root = root
        self.port = free_port()
        root.chmod(0o711)  # apps' users pass through to their slugs
        env = {**os.environ, "CORRAL_CREDENTIALS": str(root / "credentials.json")}
        env["CORRAL_USER_PREFIX"] = USER_PREFIX
        if source is not None:
            env["PYTHONPATH"] = str(source)
        self.server = subprocess.Popen(
            [sys.executable, "-m", "corral", "server", "--home", str(root / "home"),
             "--bind", f"127.0.0.1:{self.port}", "--grace", "5", *flags],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        # the server writes its admin token once the API answers through the router
        token_file = root / "home" / "admin-token"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://localhost:{self.port}/api/v1/health").raise_for_status()
                if token_file.exists():
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("corral server did not start")
            time.sleep(0.1)
        token = token_file.read_text().strip()
        self.token = token
        self.api = httpx.Client(
            base_url=f"http://localhost:{self.port}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
        )

    def new_app(self, name: str) -> Path:
        self.api.post("/apps", json={"name": name}).raise_for_status()
        repo = self.root / name
        repo.mkdir()
        (repo / "requirements.txt").write_text("flask>=3,<4\ngunicorn>=22\n")
        (repo / "Procfile").write_text("web: gunicorn app:app\n")
        (repo / "app.py").write_text(APP.format(marker="start"))
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "start")
        url = f"http://corral:{self.token}@localhost:{self.port}/git/{name}.git"
        git(repo, "remote", "add", "corral", url)
        return repo

    def serves(self, app: str, marker: str) -> bool:
        try:
            response = httpx.get(
                f"http://127.0.0.1:{self.port}/", headers={"Host": f"{app}.localhost"}
            )
        except httpx.TransportError:
            return False
        return response.text == marker

    def push_until_served(self, repo: Path, marker: str) -> float:
        """Commit ``marker`` as the app's answer; seconds from push to serving it."""
        (repo / "app.py").write_text(APP.format(marker=marker))
        git(repo, "commit", "-qam", marker)
        started = time.perf_counter()
        git(repo, "push", "-q", "corral", "main")
        while not self.serves(repo.name, marker):
            if time.perf_counter() - started > 120:
                raise SystemExit(f"{marker} was never served")
            time.sleep(0.01)
        return time.perf_counter() - started

    def push_timed(self, repo: Path, marker: str) -> Breakdown:
        """Commit ``marker`` and push it, timing each stage of the deploy (see the docstring)."""
        (repo / "app.py").write_text(APP.format(marker=marker))
        git(repo, "commit", "-qam", marker)
        served: list[float] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set() and not self.serves(repo.name, marker):
                if time.perf_counter() - started > 120:
                    return
                time.sleep(0.005)
            served.append(time.perf_counter())

        wall, started = time.time(), time.perf_counter()
        watcher = threading.Thread(target=watch)
        watcher.start()
        push = subprocess.Popen(
            ["git", "push", "--progress", "corral", "main"], cwd=repo,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        seen: dict[str, float] = {}
        assert push.stderr is not None
        for line in push.stderr:
            now = time.perf_counter() - started
            if line.startswith("remote:"):
                seen.setdefault("remote", now)
                if "-----> Launching" in line:
                    seen.setdefault("launching", now)
                if "-----> Released" in line:
                    seen.setdefault("relayed", now)
        if push.wait() != 0:
            raise SystemExit(f"git push of {marker} failed")
        returned = time.perf_counter() - started
        watcher.join(timeout=120)
        done.set()
        if not served:
            raise SystemExit(f"{marker} was never served")
        recorded, live = self._verdict_times(repo.name)
        return Breakdown(
            first_remote_line=seen["remote"],
            release_recorded=recorded - wall,
            verdict_committed=live - wall,
            verdict_relayed=seen["relayed"],
            push_returned=returned,
            served=served[0] - started,
        )

    def _verdict_times(self, app: str) -> tuple[float, float]:
        """(the newest release's ``created_at``, its ``is live`` line), as Unix times."""
        home = self.root / "home"
        with sqlite3.connect(f"file:{home / 'corral.db'}?mode=ro", uri=True) as conn:
            version, created = conn.execute(
                "SELECT version, created_at FROM releases WHERE app = ? ORDER BY version DESC",
                (app,),
            ).fetchone()
        needle = f"Release v{version} is live"
        for line in (home / "logs" / app / "corral.log").read_text().splitlines():
            if line.endswith(needle):
                return created, datetime.fromisoformat(line.split(" ", 1)[0]).timestamp()
        raise SystemExit(f"no '{needle}' line in {app}'s log")

    def close(self) -> None:
        os.kill(self.server.pid, signal.SIGTERM)
        self.server.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--redeploys", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="only the redeploy breakdown")
    parser.add_argument(
        "--against", type=Path, help="with --quick: also a baseline tree's src dir, alternating"
    )
    args = parser.parse_args()
    if args.quick:
        _quick(args.runs, args.against)
        return
    with tempfile.TemporaryDirectory(prefix="corral-bench-deploy-") as tmp:
        bench = Bench(Path(tmp))
        try:
            warm = bench.new_app("warmup")  # fills the installer cache
            bench.push_until_served(warm, "warm")
            first = [
                bench.push_until_served(bench.new_app(f"first{i}"), f"first-{i}")
                for i in range(args.runs)
            ]
            repo = bench.new_app("redeploy")
            bench.push_until_served(repo, "r0")
            timed = [bench.push_timed(repo, f"r{i + 1}") for i in range(args.runs)]
            redeploy = [run.served for run in timed]

            results: list[object] = []
            stop = threading.Event()

            def load() -> None:
                with httpx.Client(headers={"Host": "redeploy.localhost"}, timeout=10) as client:
                    while not stop.is_set() and len(results) < 200_000:
                        try:
                            results.append(
                                client.get(f"http://127.0.0.1:{bench.port}/").status_code
                            )
                        except httpx.TransportError as exc:
                            results.append(type(exc).__name__)

            thread = threading.Thread(target=load)
            thread.start()
            under_load = [bench.push_until_served(repo, f"load-{i}") for i in range(args.redeploys)]
            stop.set()
            thread.join()
        finally:
            bench.close()
            _remove_users()
    unconfined = _redeploys_unconfined(args.runs) if os.geteuid() == 0 else []
    failed = [r for r in results if r != 200]
    print(f"corral deploy benchmark (git push -> served through the router), {args.runs} runs")
    print(
        f"  first deploy (new app, warm cache)   median {statistics.median(first):5.2f} s"
        f"   (range {min(first):.2f}-{max(first):.2f})"
    )
    print(
        f"  code-only redeploy                   median {statistics.median(redeploy):5.2f} s"
        f"   (range {min(redeploy):.2f}-{max(redeploy):.2f})"
    )
    print_breakdown(timed)
    loaded = statistics.median(under_load)
    print(f"  {args.redeploys} redeploys under load       median {loaded:5.2f} s")
    print(f"  requests during them                 {len(results)} sent, {len(failed)} failed")
    if unconfined:
        off = statistics.median(unconfined)
        on = statistics.median(redeploy)
        print(
            f"  code-only redeploy, isolation off    median {off:5.2f} s"
            f"   (isolated/not ratio {on / off:.2f})"
        )


def _redeploys_timed(runs: int, source: Path | None = None) -> list[Breakdown]:
    """``runs`` code-only redeploys on a new server (run from ``source`` if given)."""
    with tempfile.TemporaryDirectory(prefix="corral-bench-deploy-") as tmp:
        bench = Bench(Path(tmp), source=source)
        try:
            repo = bench.new_app("redeploy")
            bench.push_until_served(repo, "r0")
            return [bench.push_timed(repo, f"r{i + 1}") for i in range(runs)]
        finally:
            bench.close()
            _remove_users()


def _quick(runs: int, against: Path | None) -> None:
    """Only the code-only redeploy breakdown; with ``against``, that code's too, alternating."""
    if against is not None and not (against / "corral" / "__init__.py").is_file():
        raise SystemExit(f"{against} holds no corral package; give the src directory of a tree.")
    load = [os.getloadavg()[0]]
    timed, baseline = list[Breakdown](), list[Breakdown]()
    for _ in range(2 if against is not None else 1):
        if against is not None:
            baseline += _redeploys_timed(runs, against)
        timed += _redeploys_timed(runs)
        load.append(os.getloadavg()[0])
    span = f"{min(load):.2f}-{max(load):.2f}"
    print(f"corral deploy benchmark, code-only redeploys (load average {span})")
    if against is not None:
        print(f"  baseline: {against}")
    print_breakdown(timed, baseline)
    if against is not None:
        before = statistics.median(run.served for run in baseline)
        after = statistics.median(run.served for run in timed)
        print(f"  push -> served: {after:.3f} s vs {before:.3f} s (ratio {after / before:.2f})")


#: The names of the apps' users this bench makes: its own, so it removes only those.
USER_PREFIX = f"cb{os.getpid() % 0xFFFF:04x}-"


def _remove_users() -> None:
    import pwd

    for entry in pwd.getpwall():
        if entry.pw_name.startswith(USER_PREFIX):
            for tool in ("/usr/sbin/userdel", "/usr/sbin/groupdel"):
                subprocess.run([tool, entry.pw_name], capture_output=True, check=False)


def _redeploys_unconfined(runs: int) -> list[float]:
    """Code-only redeploys on a second server whose apps run as root, without cgroups."""
    with tempfile.TemporaryDirectory(prefix="corral-bench-deploy-off-") as tmp:
        bench = Bench(Path(tmp), "--no-isolation", "--no-kernel-limits")
        try:
            repo = bench.new_app("redeploy")
            bench.push_until_served(repo, "r0")
            return [bench.push_until_served(repo, f"r{i + 1}") for i in range(runs)]
        finally:
            bench.close()


if __name__ == "__main__":
    main()
