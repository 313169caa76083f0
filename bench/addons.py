"""Add-on benchmark: ``addons:create postgresql`` to the app serving with ``DATABASE_URL``,
and backup and restore of a 100 MB database.

Run: ``.venv/bin/python bench/addons.py [--megabytes 100] [--runs 3]`` (as root: the cluster runs as
Debian's postgres user; PostgreSQL must be installed). It starts a real ``corral server``
(``--no-isolation``) in a temporary home under /tmp, deploys a Flask + psycopg app that
answers with the name of the database its ``DATABASE_URL`` names, and times, from the
API call until the router serves the new answer:

- the first add-on of a fresh home (``initdb`` and the cluster's first start included),
- a second add-on (another app, the cluster already running),
- as the baseline of the same run, a plain ``config:set`` of that second app (the release
  and rollover every add-on also pays), with the ratio.

Then it fills the second app's database to ``--megabytes`` and times ``pg:backups:capture``
and ``pg:backups:restore`` through the API, against ``pg_dump`` alone into /dev/null
(the same cluster, the same socket) as the baseline.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy import free_port, git

APP = """import os
import psycopg
from flask import Flask
app = Flask(__name__)

@app.get("/")
def index():
    url = os.environ.get("DATABASE_URL")
    if not url:
        return "none"
    with psycopg.connect(url, connect_timeout=5) as conn:
        name = conn.execute("select current_database()").fetchone()[0]
    return f"db:{name}:{os.environ.get('MARK', '')}"
"""
FILL = (
    "CREATE TABLE IF NOT EXISTS filler (id bigint, body text);"
    # twelve different digests a row: hex text, which compresses about as real data does
    "INSERT INTO filler SELECT g, (SELECT string_agg(md5((g * 13 + k)::text), '') "
    "FROM generate_series(1, 12) AS k) FROM generate_series({first}, {last}) AS g;"
)


class Bench:
    """A `corral server` in a temporary home, an API client and a pusher."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        root.chmod(0o711)  # the postgres user passes through to the cluster
        self.env = {**os.environ, "CORRAL_CREDENTIALS": str(root / "credentials.json")}
        self.server = subprocess.Popen(
            [sys.executable, "-m", "corral", "server", "--home", str(root / "home"),
             "--bind", f"127.0.0.1:{self.port}", "--grace", "5", "--no-isolation"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        token_file = root / "home" / "admin-token"
        self._until(lambda: self._healthy() and token_file.exists(), 60, "corral server")
        self.token = token_file.read_text().strip()
        self.api = httpx.Client(
            base_url=f"http://localhost:{self.port}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=600,
        )

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"http://localhost:{self.port}/api/v1/health").is_success
        except httpx.TransportError:
            return False

    @staticmethod
    def _until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise SystemExit(f"{what}: not within {timeout:g}s")
            time.sleep(0.02)

    def answer(self, app: str) -> str:
        try:
            response = httpx.get(
                f"http://127.0.0.1:{self.port}/", headers={"Host": f"{app}.localhost"}
            )
        except httpx.TransportError:
            return ""
        return response.text

    def deploy(self, app: str) -> None:
        self.api.post("/apps", json={"name": app}).raise_for_status()
        repo = self.root / app
        repo.mkdir()
        (repo / "requirements.txt").write_text("flask\ngunicorn\npsycopg[binary]\n")
        (repo / "Procfile").write_text("web: gunicorn app:app\n")
        (repo / "app.py").write_text(APP)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "start")
        git(repo, "push", "-q", f"http://corral:{self.token}@localhost:{self.port}/git/{app}.git",
            "main")  # fmt: skip
        self._until(lambda: self.answer(app) == "none", 120, f"{app} serving")

    def create_addon(self, app: str) -> tuple[float, float, str]:
        """Seconds the create call took, and until the app served with its database; the
        add-on's name."""
        started = time.perf_counter()
        answer = self.api.post(f"/apps/{app}/addons", json={"service": "postgresql"})
        answer.raise_for_status()
        called = time.perf_counter() - started
        self._until(lambda: self.answer(app).startswith("db:"), 120, f"{app} with a database")
        return called, time.perf_counter() - started, answer.json()["addon"]["name"]

    def config_change(self, app: str, mark: str) -> float:
        """Seconds from ``config:set MARK=mark`` until the app serves with it."""
        started = time.perf_counter()
        self.api.patch(f"/apps/{app}/config", json={"MARK": mark}).raise_for_status()
        self._until(lambda: self.answer(app).endswith(f":{mark}"), 120, f"{app} rolled")
        return time.perf_counter() - started

    def psql(self, app: str, sql: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "corral", "pg:psql", "-a", app, "-c", sql],
            env=self.env, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(done.stdout + done.stderr)

    def close(self) -> None:
        os.kill(self.server.pid, signal.SIGTERM)
        self.server.wait(timeout=120)


def _timed(call) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="corral-bench-addons-", dir="/tmp") as tmp:
        bench = Bench(Path(tmp))
        try:
            bench.deploy("first")
            first_call, first, _ = bench.create_addon("first")
            bench.deploy("second")
            second_call, second, addon = bench.create_addon("second")
            baseline = statistics.median(bench.config_change("second", f"m{i}") for i in range(3))
            rows = 0
            while True:
                size = bench.api.get(f"/addons/{addon}").json()["size"]
                if size >= args.megabytes * 1_000_000:
                    break
                step = max(10_000, int((args.megabytes * 1_000_000 - size) / 500))
                bench.psql("second", FILL.format(first=rows + 1, last=rows + step))
                rows += step
            home = Path(tmp) / "home"
            plain, capture, restore = [], [], []
            for _ in range(args.runs):  # alternated, so neither gets the warmer cache
                plain.append(_timed(lambda: _pg_dump_alone(home, addon)))
                capture.append(
                    _timed(lambda: bench.api.post(f"/addons/{addon}/backups").raise_for_status())
                )
                restore.append(
                    _timed(
                        lambda: bench.api.post(
                            f"/addons/{addon}/restore", json={}
                        ).raise_for_status()
                    )
                )
            dump = bench.api.get(f"/addons/{addon}/backups").json()[-1]["size"]
        finally:
            bench.close()
    print("corral add-on benchmark (API call -> app serving with DATABASE_URL)")
    print(f"  first add-on, fresh home (initdb)    {first:6.2f} s   (the call {first_call:.2f} s)")
    print(
        f"  second add-on                        {second:6.2f} s   (the call {second_call:.2f} s)"
    )
    print(f"  config:set alone (same app, median)  {baseline:6.2f} s"
          f"   (second add-on / config:set ratio {second / baseline:.2f})")  # fmt: skip
    print(f"backup and restore of a {size / 1e6:.0f} MB database ({rows} rows, "
          f"dump {dump / 1e6:.1f} MB), medians of {args.runs}")  # fmt: skip
    capture_s, plain_s = statistics.median(capture), statistics.median(plain)
    print(f"  pg:backups:capture                   {capture_s:6.2f} s"
          f"   (pg_dump alone {plain_s:.2f} s, ratio {capture_s / plain_s:.2f})")  # fmt: skip
    print(f"  pg:backups:restore                   {statistics.median(restore):6.2f} s")


def _pg_dump_alone(home: Path, addon: str) -> None:
    """pg_dump of the same database by the same user through the same socket, to /dev/null."""
    import json
    import pwd

    state = json.loads((home / "addons" / "postgresql" / "cluster.json").read_text())
    owner = pwd.getpwnam(state["superuser"])
    subprocess.run(
        [f"{state['bin']}/pg_dump", "--format=custom", "--no-owner",
         "--host", str(home / "addons" / "postgresql" / "run"), "--port", str(state["port"]),
         "--username", state["superuser"], addon.replace("-", "_")],
        stdout=subprocess.DEVNULL, check=True, user=owner.pw_uid, group=owner.pw_gid,
        cwd="/", timeout=1800,
    )  # fmt: skip


if __name__ == "__main__":
    main()
