"""Config changes and rollbacks that cannot start never go live: real server, real dynos.

The CLI waits for the verdict like a deploy does; a release whose dynos fail is marked
failed with why, the previous release stays current and keeps serving.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.cli import corral as run_cli
from support.server import Server, git
from support.wait import wait_until

pytestmark = pytest.mark.slow

#: web needs GREETING at import; the worker needs TOKEN: each crashes at boot without it.
STRICT_APP = """import os
from flask import Flask
GREETING = os.environ["GREETING"]
app = Flask(__name__)

@app.get("/")
def index():
    return GREETING
"""
WORKER = """import os, time
TOKEN = os.environ["TOKEN"]
while True:
    time.sleep(1)
"""


def _repo(tmp_path: Path, server: Server) -> Path:
    repo = tmp_path / "strict"
    repo.mkdir()
    (repo / "requirements.txt").write_text("flask\ngunicorn\n")
    (repo / "app.py").write_text(STRICT_APP)
    (repo / "worker.py").write_text(WORKER)
    (repo / "Procfile").write_text("web: gunicorn app:app\nworker: python worker.py\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    git(repo, "remote", "add", "corral", server.git_url("strict"))
    return repo


def _releases(server: Server, repo: Path) -> dict[str, str]:
    listed = run_cli("releases", "--json", env=server.env, cwd=repo)
    assert listed.returncode == 0, listed.stderr
    return {r["name"]: r["status"] for r in json.loads(listed.stdout)}


def _current(server: Server) -> int:
    return server.api.get("/apps/strict").json()["current_release"]


def test_config_changes_and_rollbacks_that_crash_never_go_live(server: Server, tmp_path) -> None:
    def corral(*args: str):
        return run_cli(*args, env=server.env, cwd=repo, timeout=300)

    server.api.post("/apps", json={"name": "strict"}).raise_for_status()
    repo = _repo(tmp_path, server)
    assert corral("config:set", "GREETING=hi").returncode == 0  # before the first deploy
    push = git(repo, "push", "corral", "main")
    assert "Released v1" in push.stderr, push.stderr
    assert server.app_get("strict").text == "hi"

    unset = corral("config:unset", "GREETING")
    assert unset.returncode == 1
    assert "v2 failed to start: " in unset.stderr
    assert "the previous release keeps serving." in unset.stderr
    assert "KeyError" in unset.stderr and "Traceback" not in unset.stdout
    assert _releases(server, repo) == {"v2": "failed", "v1": "succeeded"}
    assert _current(server) == 1
    assert json.loads(corral("config", "--json").stdout) == {"GREETING": "hi"}
    assert server.app_get("strict").text == "hi"

    token = corral("config:set", "TOKEN=t0ken")
    assert token.returncode == 0, token.stderr
    assert "done, v3" in token.stdout
    assert _current(server) == 3
    assert corral("ps:scale", "worker=1").returncode == 0
    wait_until(
        lambda: any(
            d["name"] == "worker.1" and d["state"] == "up"
            for d in server.api.get("/apps/strict/dynos").json()
        ),
        60,
        message="the worker never came up",
    )

    # v1's config has no TOKEN: its worker crashes, so the rollback must not go live
    back = corral("rollback", "v1")
    assert back.returncode == 1
    assert "v4 failed to start: " in back.stderr, back.stderr
    assert "KeyError: 'TOKEN'" in back.stderr
    assert _releases(server, repo)["v4"] == "failed"
    assert _current(server) == 3
    assert json.loads(corral("config", "--json").stdout) == {"GREETING": "hi", "TOKEN": "t0ken"}
    assert server.app_get("strict").text == "hi"

    # --no-wait hands back at once; the release still rolls out
    quick = corral("config:set", "--no-wait", "GREETING=hey")
    assert quick.returncode == 0, quick.stderr
    assert "v5 is rolling out" in quick.stdout
    wait_until(lambda: server.app_get("strict").text == "hey", 60, message="v5 never served")
    wait_until(lambda: _current(server) == 5, 30, message="v5 never became current")
