"""Redis add-ons on a real `corral server` as root: a Flask app counting in its Redis and
a worker taking what the web process pushes onto a list, a ``kill -9`` of the server
losing no answered write, ``redis:cli`` and ``redis:info``, and a destroy that leaves no
process or file of it behind."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from support.cli import corral
from support.isolation import needs_root, unique_prefix, users_removed
from support.server import Server, git, isolated_server
from support.wait import wait_until

pytestmark = [
    needs_root,
    pytest.mark.skipif(
        not os.access("/usr/bin/redis-server", os.X_OK) and not os.environ.get("CI"),
        reason="Redis is not installed (apt-get install redis-server)",
    ),
]

APP = """import os, time
import redis
from flask import Flask

app = Flask(__name__)
store = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5)


@app.post("/hit")
def hit():
    count = store.incr("hits")
    store.rpush("jobs", f"job-{count}")
    return str(count)


@app.get("/")
def index():
    done = sorted(x.decode() for x in store.smembers("done"))
    return f"{int(store.get('hits') or 0)} {','.join(done)}"


def work():
    while True:
        job = store.blpop("jobs", timeout=1)
        if job:
            store.sadd("done", job[1].decode())
"""


@pytest.fixture(scope="module")
def platform() -> Iterator[Server]:
    """One platform for the module, as root with apps isolated: each Redis runs as
    Debian's redis user, each app as its own."""
    with (
        users_removed(unique_prefix()) as prefix,
        isolated_server(prefix) as running,
    ):
        yield running


def _ok(server: Server, *args: str) -> str:
    done = corral(*args, env=server.env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _hit(server: Server, app: str) -> str:
    return httpx.post(
        f"http://127.0.0.1:{server.port}/hit", headers={"Host": f"{app}.localhost"}, timeout=10
    ).text


def _redis_pids(addon_dir: Path) -> list[int]:
    data = str(addon_dir / "data")
    return [
        p.pid
        for p in psutil.process_iter(["name", "cwd"])
        if p.info["name"] == "redis-server" and p.info["cwd"] == data
    ]


@pytest.fixture(scope="module")
def counter(platform: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """App counter: a Redis add-on, a web and a worker process, deployed with git."""
    _ok(platform, "apps:create", "counter")
    created = _ok(platform, "addons:create", "redis", "-a", "counter")
    assert "attached as REDIS_URL" in created
    repo = tmp_path_factory.mktemp("counter")
    (repo / "requirements.txt").write_text("flask\ngunicorn\nredis\n")
    (repo / "app.py").write_text(APP)
    (repo / "Procfile").write_text(
        "web: gunicorn app:app\nworker: python -c 'import app; app.work()'\n"
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    pushed = git(repo, "push", platform.git_url("counter"), "main", check=False)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    _ok(platform, "ps:scale", "worker=1", "-a", "counter")
    return "counter"


def _shows(server: Server, app: str, text: str) -> None:
    def seen() -> bool:
        try:
            return text in server.app_get(app).text
        except httpx.TransportError:
            return False

    wait_until(seen, timeout=60, interval=0.2, message=f"{app} showing {text!r}")


def test_the_web_process_counts_and_the_worker_takes_its_jobs(
    platform: Server, counter: str
) -> None:
    assert [_hit(platform, counter) for _ in range(3)] == ["1", "2", "3"]
    _shows(platform, counter, "3 job-1,job-2,job-3")  # the worker took each job off the list


def test_kill_9_of_the_redis_server_loses_no_answered_write(platform: Server, counter: str) -> None:
    before = int(_hit(platform, counter))
    [addon] = [p.parent for p in (platform.home / "addons").glob("redis-*/redis.conf")]
    [pid] = _redis_pids(addon)
    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: bool(pids := _redis_pids(addon)) and pid not in pids, timeout=30, interval=0.1
    )
    _shows(platform, counter, f"{before} ")  # restarted, the count kept, the app reconnected
    assert int(_hit(platform, counter)) == before + 1


def test_redis_cli_and_redis_info(platform: Server, counter: str) -> None:
    assert _ok(platform, "redis:cli", "-a", counter, "-c", "GET hits").strip().isdigit()
    info = _ok(platform, "redis:info", "-a", counter)
    assert "redis 7" in info and "maxmemory 67.1 MB" in info and "Keys:" in info
    url = _ok(platform, "config:get", "REDIS_URL", "-a", counter).strip()
    password = url.split(":")[2].split("@")[0]
    for proc in psutil.process_iter(["cmdline"]):
        assert password not in " ".join(proc.info["cmdline"] or [])  # never on a command line


def test_destroy_leaves_no_redis_process_or_file(platform: Server, counter: str) -> None:
    _ok(platform, "apps:create", "scratch")
    created = _ok(platform, "addons:create", "redis", "-a", "scratch", "--plan", "standard")
    name = created.split("done, ")[1].split()[0]
    addon = platform.home / "addons" / name
    assert _redis_pids(addon)
    bad = corral("addons:create", "redis", "-a", "scratch", "--plan", "huge", env=platform.env)
    assert bad.returncode == 1 and "mini, standard, premium" in bad.stderr
    _ok(platform, "addons:destroy", name, "--confirm", "scratch")
    assert not _redis_pids(addon) and not addon.exists()
    assert "REDIS_URL" not in _ok(platform, "config", "-a", "scratch")
    ps = _ok(platform, "ps", "--platform")
    assert name not in ps and "redis-" in ps  # counter's own is still there
