"""An app without a web process, end to end through a real `corral server` and git push.

The push says nothing is routed instead of printing a URL; neither `corral ps` nor the
router's page tells it to scale web; ``release`` is a phase, never scaled nor listed; and
a worker that exits a second after it starts fails its release while the old one runs on.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.cli import corral as run_cli
from support.server import Server, git
from support.wait import wait_until

pytestmark = pytest.mark.slow

WORKER = "import time\nprint('{greeting}', flush=True)\ntime.sleep({seconds})\n"


def corral(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=server.env, timeout=120)


def worker_repo(tmp_path: Path, server: Server, app: str) -> Path:
    repo = tmp_path / f"repo-{app}"
    repo.mkdir()
    (repo / "requirements.txt").write_text("flask\n")
    (repo / "worker.py").write_text(WORKER.format(greeting="working", seconds=600))
    (repo / "Procfile").write_text("worker: python worker.py\nrelease: echo migrating\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    git(repo, "remote", "add", "corral", server.git_url(app))
    return repo


def dynos(server: Server, app: str) -> list[dict]:
    result = corral(server, "ps", "-a", app, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_an_app_without_web_is_never_told_to_scale_web(server: Server, tmp_path) -> None:
    server.api.post("/apps", json={"name": "jobs"}).raise_for_status()
    repo = worker_repo(tmp_path, server, "jobs")
    push = git(repo, "push", "corral", "main")
    assert (
        "remote: -----> Released v1 (no web process: nothing is routed; "
        "start one with `corral ps:scale worker=1`)"
    ) in push.stderr, push.stderr
    assert "is live" not in push.stderr
    shown = corral(server, "ps", "-a", "jobs")
    assert shown.stdout.strip() == "jobs has no dynos; scale up with `corral ps:scale worker=1`."
    assert corral(server, "ps:scale", "-a", "jobs").stdout.strip() == "worker=0"
    refused = corral(server, "ps:scale", "release=1", "-a", "jobs")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "release is the release phase" in refused.stderr and "Scale one of: worker" in (
        refused.stderr
    )
    page = server.app_get("jobs")
    assert page.status_code == 503 and "has no web process" in page.text
    assert "ps:scale" not in page.text


def test_a_worker_that_quits_after_a_second_fails_the_push(server: Server, tmp_path) -> None:
    server.api.post("/apps", json={"name": "quits"}).raise_for_status()
    repo = worker_repo(tmp_path, server, "quits")
    git(repo, "push", "corral", "main")
    assert corral(server, "ps:scale", "worker=1", "-a", "quits").returncode == 0
    wait_until(
        lambda: [d["state"] for d in dynos(server, "quits")] == ["up"],
        60,
        interval=0.2,
        message="worker.1 up",
    )
    [before] = dynos(server, "quits")
    (repo / "worker.py").write_text(WORKER.format(greeting="quitting", seconds=1))
    git(repo, "commit", "-qam", "v2")
    push = git(repo, "push", "corral", "main", check=False)
    assert push.returncode != 0
    assert "remote:  !     v2 failed to start: worker.1 exited 1." in push.stderr, push.stderr
    assert "a dyno without HTTP must keep running for 3s" in push.stderr
    assert "remote:        worker.1: quitting" in push.stderr
    assert "working" not in push.stderr  # the old worker's lines are not the new one's
    [after] = dynos(server, "quits")
    assert (after["pid"], after["release"], after["state"]) == (before["pid"], "v1", "up")
    assert [d["name"] for d in dynos(server, "quits")] == ["worker.1"]  # release: never a dyno
