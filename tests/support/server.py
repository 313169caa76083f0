"""A real `corral server` for end-to-end tests, checked to leave no process behind when it
stops, and the git helpers that push an app to it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from support.nginx import require_nginx
from support.processes import free_port
from support.wait import wait_until

APP = """import os
from flask import Flask
app = Flask(__name__)

@app.get("/")
def index():
    return os.environ.get("GREETING", "hello {version}")
"""


#: Run a test of a real server against each router: the embedded one, and nginx.
both_routers = pytest.mark.parametrize("server", ["embedded", "nginx"], indirect=True)


@dataclass
class Server:
    """A running `corral server` and what a user of it needs."""

    home: Path
    port: int
    process: subprocess.Popen
    env: dict[str, str]
    router: str = "embedded"

    @property
    def token(self) -> str:
        """The admin token the server wrote into its home."""
        return (self.home / "admin-token").read_text().strip()

    @property
    def api(self) -> httpx.Client:
        """A client of the server's API, signed in with the admin token."""
        return httpx.Client(
            base_url=f"http://localhost:{self.port}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def app_get(self, app: str) -> httpx.Response:
        """GET / of ``app`` through the router."""
        return httpx.get(f"http://127.0.0.1:{self.port}/", headers={"Host": f"{app}.localhost"})

    def git_url(self, app: str, token: str | None = None) -> str:
        """The URL to push ``app`` to."""
        return f"http://corral:{token or self.token}@localhost:{self.port}/git/{app}.git"


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://localhost:{port}/api/v1/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _holds_lock(home: Path, pid: int) -> bool:
    try:
        return json.loads((home / "run" / "server.lock").read_text())["pid"] == pid
    except (OSError, ValueError, KeyError):
        return False


def start_server(
    home: Path,
    port: int,
    env: dict[str, str],
    *,
    isolation: bool = False,
    router: str = "embedded",
    args: tuple[str, ...] = (),
) -> subprocess.Popen:
    """Start `corral server` on ``port`` and return it once it holds its home's lock, its
    API says it is healthy and its admin token is written (once the platform serves).

    The lock matters after a ``kill -9``: the old API answers before the new server runs.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "corral", "server", "--home", str(home),
         "--bind", f"127.0.0.1:{port}", "--boot-timeout", "20", "--grace", "5",
         "--router", router, *([] if isolation else ["--no-isolation"]), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip

    def alive() -> None:
        assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]

    wait_until(
        lambda: (
            _holds_lock(home, process.pid) and _healthy(port) and (home / "admin-token").exists()
        ),
        timeout=60,
        interval=0.1,
        message="corral server",
        check=alive,
    )
    return process


def platform_pids(home: Path) -> set[int]:
    """Every process running from this server's home (shims, dynos, API, router)."""
    pids = set()
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = proc.info["environ"] or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if str(home) in cmdline or environ.get("CORRAL_HOME") == str(home):
            pids.add(proc.pid)
    return pids


def _described(pid: int) -> str:
    """A process by its name and command line (a shim the zygote forked has the zygote's
    command line, and its own name: ``shim web.1``)."""
    try:
        process = psutil.Process(pid)
        return f"{process.name()}: {' '.join(process.cmdline())}"
    except psutil.Error:
        return f"{pid} (gone)"


@contextmanager
def running_server(
    tmp_path: Path,
    corral_home: Path,
    port: int | None = None,
    args: tuple[str, ...] = (),
    *,
    router: str = "embedded",
) -> Iterator[Server]:
    """A `corral server` with its own home under ``tmp_path`` (sharing the warm installer
    cache of ``corral_home``), on ``port`` (a free one) with ``args`` besides and the
    ``router`` asked for (``embedded`` or ``nginx``); on exit, fails if stopping it left any
    process behind."""
    if router == "nginx":
        require_nginx()
    home = tmp_path / "home"
    home.mkdir()
    (corral_home / "cache").mkdir(exist_ok=True)
    (home / "cache").symlink_to(corral_home / "cache", target_is_directory=True)
    serving = _serving(home, tmp_path / "credentials.json", {}, port=port, args=args, router=router)
    with serving as running:
        yield running


@contextmanager
def isolated_server(user_prefix: str, *, isolation: bool = True) -> Iterator[Server]:
    """A `corral server` as root with apps isolated (unless ``isolation`` is off), its apps'
    users named ``user_prefix`` + app. Its home is under /tmp (pytest's own temporary
    directories are closed to other users, whom the apps' users are, and PostgreSQL's),
    removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="corral-isolated-", dir="/tmp"))
    try:
        root.chmod(0o711)
        extra = {"CORRAL_USER_PREFIX": user_prefix}
        credentials = root / "credentials.json"
        with _serving(root / "home", credentials, extra, isolation=isolation) as running:
            yield running
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _serving(
    home: Path,
    credentials: Path,
    extra: dict[str, str],
    *,
    isolation: bool = False,
    router: str = "embedded",
    port: int | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[Server]:
    port = port or free_port()
    # The caller's environment on purpose: builds install from the network through it.
    env = {**os.environ, "CORRAL_CREDENTIALS": str(credentials), **extra}
    env.pop("CORRAL_HOME", None)
    process = start_server(home, port, env, isolation=isolation, args=args, router=router)
    running = Server(home, port, process, env, router)
    if router == "nginx":  # the one that answers is nginx itself
        health = httpx.get(f"http://localhost:{port}/api/v1/health", timeout=5)
        assert health.headers.get("server") == "nginx", health.headers
    try:
        yield running
    finally:
        os.kill(running.process.pid, signal.SIGTERM)
        output, _ = running.process.communicate(timeout=60)
        with suppress(AssertionError):  # what is left is named below
            wait_until(lambda: not platform_pids(home), timeout=20, interval=0.1)
        leftover = platform_pids(home)
        described = [_described(pid) for pid in leftover]
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
        assert not leftover, (
            f"the server left processes behind: {described}; it said:\n{output[-4000:]}"
        )
        if "Traceback" in output:  # it went on (a failed supervisor pass): worth knowing
            warnings.warn(f"the server printed a traceback:\n{output[-4000:]}", stacklevel=2)


def git(
    repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run git in ``repo`` with a fixed identity."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo, capture_output=True, text=True, check=check, timeout=300, env=env,
    )  # fmt: skip


def make_repo(
    tmp_path: Path, server: Server, app: str, version: str = "v1", source: str = APP
) -> Path:
    """A git repo of a small Flask app (``source``: by default one answering "hello
    VERSION"), with ``server`` as remote."""
    repo = tmp_path / f"repo-{app}"
    repo.mkdir()
    (repo / "requirements.txt").write_text("flask\ngunicorn\n")
    (repo / "app.py").write_text(source.replace("{version}", version))
    (repo / "Procfile").write_text("web: gunicorn app:app\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", version)
    git(repo, "remote", "add", "corral", server.git_url(app))
    return repo
