"""`corral server` end to end: real server process, real router, real git pushes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psutil
import pytest

from support.server import APP, Server, both_routers, git, make_repo, start_server
from support.wait import wait_until

pytestmark = pytest.mark.slow


def test_first_start_writes_a_private_token_and_credentials(server: Server, tmp_path) -> None:
    assert (server.home / "admin-token").stat().st_mode & 0o777 == 0o600
    creds = tmp_path / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600
    assert json.loads(creds.read_text()) == {
        "server": f"http://localhost:{server.port}",
        "token": server.token,
    }
    assert server.token not in (server.home / "corral.db").read_bytes().decode("latin-1")


@both_routers
def test_push_deploys_then_config_redeploy_and_rollback(server: Server, tmp_path) -> None:
    def current(version: int) -> bool:
        return server.api.get("/apps/hello").json()["current_release"] == version

    assert server.api.post("/apps", json={"name": "hello"}).status_code == 201
    repo = make_repo(tmp_path, server, "hello")
    push = git(repo, "push", "corral", "main")
    assert "remote: -----> Released v1" in push.stderr, push.stderr
    assert server.app_get("hello").text == "hello v1"
    changed = server.api.patch("/apps/hello/config", json={"GREETING": "howdy"})
    assert changed.json()["release"]["status"] == "pending"
    wait_until(
        lambda: server.app_get("hello").text == "howdy", 30, message="config change never served"
    )
    wait_until(lambda: current(2), 30, message="the config change never became current")
    (repo / "app.py").write_text(APP.replace("{version}", "v2"))
    git(repo, "commit", "-qam", "v2")
    git(repo, "push", "corral", "main")
    server.api.patch("/apps/hello/config", json={"GREETING": None}).raise_for_status()
    wait_until(lambda: server.app_get("hello").text == "hello v2", 30, message="v2 never served")
    wait_until(lambda: current(4), 30, message="the unset never became current")
    rollback = server.api.post("/apps/hello/rollback", json={"version": 1})
    assert rollback.json()["description"] == "Rollback to v1"
    wait_until(
        lambda: server.app_get("hello").text == "hello v1", 30, message="rollback never served"
    )


def test_failed_build_rejects_the_push_and_keeps_serving(server: Server, tmp_path) -> None:
    server.api.post("/apps", json={"name": "keep"}).raise_for_status()
    repo = make_repo(tmp_path, server, "keep")
    git(repo, "push", "corral", "main")
    (repo / "requirements.txt").write_text("flask\nno-such-package-corral-e2e\n")
    git(repo, "commit", "-qam", "broken")
    push = git(repo, "push", "corral", "main", check=False)
    assert push.returncode != 0
    assert "pre-receive hook declined" in push.stderr
    assert "Push rejected: the deploy failed, nothing changed." in push.stderr
    assert server.app_get("keep").text == "hello v1"
    assert [r["name"] for r in server.api.get("/apps/keep/releases").json()] == ["v1"]


def test_wrong_token_and_other_branches_are_refused(server: Server, tmp_path) -> None:
    server.api.post("/apps", json={"name": "guarded"}).raise_for_status()
    repo = make_repo(tmp_path, server, "guarded")
    git(repo, "remote", "set-url", "corral", server.git_url("guarded", token="wrong"))
    push = git(repo, "push", "corral", "main", check=False)
    assert push.returncode != 0 and "Authentication failed" in push.stderr
    git(repo, "remote", "set-url", "corral", server.git_url("guarded"))
    git(repo, "checkout", "-qb", "feature")
    push = git(repo, "push", "corral", "feature", check=False)
    assert push.returncode != 0
    assert "git push corral feature:main" in push.stderr
    push = git(repo, "push", "corral", "main", check=False)
    assert push.returncode == 0, push.stderr
    unknown = git(repo, "push", server.git_url("nope"), "main", check=False)
    assert unknown.returncode != 0


@both_routers
def test_kill_9_of_the_server_keeps_apps_serving_and_adopts_them(server: Server, tmp_path) -> None:
    server.api.post("/apps", json={"name": "sturdy"}).raise_for_status()
    git(make_repo(tmp_path, server, "sturdy"), "push", "corral", "main")
    [before] = server.api.get("/apps/sturdy/dynos").json()
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    assert server.app_get("sturdy").text == "hello v1"  # the router and dyno live on
    server.process = start_server(server.home, server.port, server.env, router=server.router)
    # the API answering proves little (it was adopted too): wait for the manager's word
    adopted = f"Adopted running process (pid {before['pid']})"
    wait_until(
        lambda: adopted in server.api.get("/apps/sturdy/logs", params={"source": "corral"}).text,
        30,
        interval=0.1,
        message="the new server to adopt web.1",
    )
    [after] = server.api.get("/apps/sturdy/dynos").json()
    assert (after["pid"], after["state"]) == (before["pid"], "up")
    assert server.app_get("sturdy").text == "hello v1"


def corral(server: Server, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, with the credentials `corral server` wrote on its first start."""
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        cwd=cwd, env=server.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_cli_drives_a_whole_app_lifecycle(server: Server, tmp_path) -> None:
    repo = tmp_path / "cli-app"
    repo.mkdir()
    (repo / "requirements.txt").write_text("flask\ngunicorn\n")
    (repo / "app.py").write_text(APP.replace("{version}", "v1"))
    (repo / "Procfile").write_text("web: gunicorn app:app\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")

    created = corral(server, repo, "apps:create", "lifecycle")
    assert created.returncode == 0, created.stderr
    assert "lifecycle" in corral(server, repo, "apps").stdout
    # authenticated by corral's credential helper, with the credentials the server wrote
    push = git(repo, "push", "corral", "main", env=server.env)
    assert "Released v1" in push.stderr, push.stderr
    assert server.app_get("lifecycle").text == "hello v1"

    config = corral(server, repo, "config:set", "GREETING=from config")
    assert config.returncode == 0, config.stderr
    wait_until(
        lambda: server.app_get("lifecycle").text == "from config",
        30,
        message="config:set never reached the app",
    )
    assert corral(server, repo, "config:get", "GREETING").stdout.strip() == "from config"
    corral(server, repo, "config:unset", "GREETING")

    (repo / "app.py").write_text(APP.replace("{version}", "v2"))
    git(repo, "commit", "-qam", "v2")
    git(repo, "push", "corral", "main", env=server.env)
    wait_until(
        lambda: server.app_get("lifecycle").text == "hello v2", 30, message="v2 never served"
    )
    releases = corral(server, repo, "releases", "--json")
    versions = [r["name"] for r in json.loads(releases.stdout)]
    assert versions[0] == "v4" and len(versions) == 4

    rollback = corral(server, repo, "rollback", "v1")
    assert rollback.returncode == 0, rollback.stderr
    wait_until(
        lambda: server.app_get("lifecycle").text == "hello v1",
        30,
        message="rollback never served the old code",
    )

    run = corral(
        server, repo, "run", "--", "python", "-c", "import flask; print(flask.__version__)"
    )
    assert run.returncode == 0, run.stderr
    # (Flask 3.1 warns that __version__ is deprecated; the version is the last line)
    assert run.stdout.strip().splitlines()[-1].startswith("3.")
    failing = corral(server, repo, "run", "--", "python", "-c", "raise SystemExit(7)")
    assert failing.returncode == 7

    dynos = server.api.get("/apps/lifecycle/dynos").json()
    pids = [d["pid"] for d in dynos]
    destroyed = corral(server, repo, "apps:destroy", "lifecycle", "--confirm", "lifecycle")
    assert destroyed.returncode == 0, destroyed.stderr
    assert not any(psutil.pid_exists(pid) and _running(pid) for pid in pids)
    assert not (server.home / "apps" / "lifecycle").exists()
    assert not (server.home / "logs" / "lifecycle").exists()
    missing = corral(server, repo, "apps:info", "-a", "lifecycle")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@both_routers
def test_redeploy_under_load_fails_no_request(server: Server, tmp_path) -> None:
    server.api.post("/apps", json={"name": "busy"}).raise_for_status()
    repo = make_repo(tmp_path, server, "busy")
    git(repo, "push", "corral", "main")
    results: list[int | str] = []
    stop = threading.Event()

    retried: list[str] = []

    def load() -> None:
        url = f"http://127.0.0.1:{server.port}/"
        with httpx.Client(headers={"Host": "busy.localhost"}, timeout=10) as client:
            while not stop.is_set() and len(results) < 5000:
                try:
                    results.append(client.get(url).status_code)
                except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                    if server.router != "nginx":
                        results.append(type(exc).__name__)
                        continue
                    # A reload makes nginx's old workers close their idle keep-alive client
                    # connections: a request sent on one as it closes never reached nginx,
                    # and clients send it again on a new one (RFC 9112 9.3.1; browsers and
                    # curl do, httpx does not): once, counted.
                    retried.append(type(exc).__name__)
                    try:
                        results.append(client.get(url).status_code)
                    except httpx.TransportError as again:
                        results.append(type(again).__name__)
                except httpx.TransportError as exc:
                    results.append(type(exc).__name__)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        for version in ("v2", "v3"):
            (repo / "app.py").write_text(APP.replace("{version}", version))
            git(repo, "commit", "-qam", version)
            git(repo, "push", "corral", "main")
        wait_until(
            lambda: len(results) >= 500 and server.app_get("busy").text == "hello v3",
            30,
            interval=0.05,
            message=lambda: f"v3 served and 500 answers (got {len(results)})",
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    failed = [r for r in results if r != 200]
    assert len(results) >= 500 and failed == [], f"{len(failed)} of {len(results)} failed"
    assert len(retried) <= 3, f"{len(retried)} requests met a closing keep-alive connection"


def test_deploy_freeze_force_and_empty_pushes(server: Server, tmp_path) -> None:
    source = tmp_path / "tarred"
    source.mkdir()
    (source / "requirements.txt").write_text("flask\ngunicorn\n")
    (source / "app.py").write_text(APP.replace("{version}", "from a tarball"))
    (source / "Procfile").write_text("web: gunicorn app:app\n")
    assert corral(server, tmp_path, "apps:create", "tarred").returncode == 0
    deployed = corral(server, tmp_path, "deploy", str(source), "-a", "tarred")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "Released v1" in deployed.stdout
    assert server.app_get("tarred").text == "hello from a tarball"
    freeze = corral(server, tmp_path, "freeze", "-a", "tarred")
    assert any(line.startswith("flask==") for line in freeze.stdout.splitlines())

    server.api.post("/apps", json={"name": "forced"}).raise_for_status()
    repo = make_repo(tmp_path, server, "forced")
    git(repo, "push", "corral", "main")
    empty = git(repo, "push", "corral", "main")
    assert "Everything up-to-date" in empty.stderr
    git(repo, "reset", "-q", "--hard", "HEAD")
    (repo / "app.py").write_text(APP.replace("{version}", "rewritten"))
    git(repo, "commit", "-q", "--amend", "-am", "rewritten history")
    refused = git(repo, "push", "corral", "main", check=False)
    assert refused.returncode != 0 and "non-fast-forward" in refused.stderr + refused.stdout
    forced = git(repo, "push", "--force", "corral", "main")
    assert "Released v2" in forced.stderr
    assert server.app_get("forced").text == "hello rewritten"


@both_routers
def test_ps_scale_restart_and_logs_through_the_cli(server: Server, tmp_path) -> None:
    server.api.post("/apps", json={"name": "scaled"}).raise_for_status()
    repo = make_repo(tmp_path, server, "scaled")
    git(repo, "push", "corral", "main")
    scaled = corral(server, repo, "ps:scale", "web=2")
    assert scaled.returncode == 0, scaled.stderr

    def web_up() -> list[dict]:
        out = corral(server, repo, "ps", "--json").stdout
        return [d for d in json.loads(out) if d["type"] == "web" and d["state"] == "up"]

    wait_until(lambda: len(web_up()) == 2, 30, interval=0.2, message="web=2 to come up")
    assert all(d["rss_bytes"] > 0 for d in web_up())
    before = {d["name"]: d["pid"] for d in web_up()}
    restart = corral(server, repo, "ps:restart", "web")
    assert restart.returncode == 0, restart.stderr

    def replaced() -> bool:
        now = {d["name"]: d["pid"] for d in web_up()}
        return now.keys() == before.keys() and all(now[n] != before[n] for n in now)

    wait_until(replaced, 30, interval=0.2, message="ps:restart to replace the web dynos")
    server.app_get("scaled")

    def router_logs() -> str:
        out = corral(server, repo, "logs", "--source", "router", "-n", "5").stdout
        return out if "status=200" in out else ""

    logs = wait_until(router_logs, 10, interval=0.2, message="the router's status=200 line")
    assert "method=GET" in logs and "dyno=web." in logs
    unknown = corral(server, repo, "ps:restart", "clock")
    assert unknown.returncode == 1 and "neither a dyno nor a process type" in unknown.stderr


def test_ps_memory_sets_shows_and_refuses_bad_values(server: Server, tmp_path) -> None:
    assert corral(server, tmp_path, "apps:create", "quota").returncode == 0
    assert "default" in corral(server, tmp_path, "ps:memory", "-a", "quota").stdout
    assert corral(server, tmp_path, "ps:memory", "1024", "-a", "quota").returncode == 0
    assert corral(server, tmp_path, "ps:memory", "-a", "quota").stdout.strip() == "1024 MB"
    assert server.api.get("/apps/quota").json()["memory_quota_mb"] == 1024
    bad = corral(server, tmp_path, "ps:memory", "lots", "-a", "quota")
    assert bad.returncode == 1 and "not a memory quota" in bad.stderr
    tiny = corral(server, tmp_path, "ps:memory", "1", "-a", "quota")
    assert tiny.returncode == 1 and "from 16 to 65536" in tiny.stderr
    assert corral(server, tmp_path, "ps:memory", "default", "-a", "quota").returncode == 0
    assert server.api.get("/apps/quota").json()["memory_quota_mb"] is None
