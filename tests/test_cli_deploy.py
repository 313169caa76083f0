"""deploy (tarball upload, streamed build) and logs --tail; `run` is in test_run.py."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request

from support.cli import cli_env, corral, git, git_repo
from support.stub_api import require_token, serve


@dataclass
class State:
    """What the fake server received, and what its build and run endpoints answer."""

    uploads: list[dict[str, Any]] = field(default_factory=list)
    build_outcome: str = "succeeded v3"


def contract_app(state: State) -> Flask:
    app = Flask(__name__)

    @app.get("/api/v1/apps/<name>")
    @require_token
    def info(name: str):
        return jsonify({"name": name, "web_url": f"http://{name}.localhost:8080/"})

    @app.post("/api/v1/apps/<name>/builds")
    @require_token
    def build(name: str):
        body = request.get_data()
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            members = {m.name: m for m in archive.getmembers()}
            state.uploads.append(
                {
                    "app": name,
                    "content_type": request.content_type,
                    "names": set(members),
                    "owners": {(m.uid, m.uname) for m in members.values()},
                }
            )
        lines = ["-----> Building hello", "corral-status: not really", state.build_outcome]
        lines[-1] = f"corral-status: {state.build_outcome}"
        return Response((line + "\n" for line in lines), mimetype="text/plain")

    @app.get("/api/v1/apps/<name>/logs")
    @require_token
    def logs(name: str):
        def forever() -> Iterator[str]:
            yield "2026-11-24T10:00:00.000001+00:00 app[web.1]: first\n"
            while True:
                time.sleep(0.2)  # paces the empty chunks of a quiet tail that never ends
                yield ""  # keeps the stream open, like a quiet tail

        return Response(forever(), mimetype="text/plain")

    return app


@pytest.fixture
def state() -> State:
    return State()


@pytest.fixture
def env(state: State, tmp_path: Path) -> Iterator[dict[str, str]]:
    with serve(contract_app(state)) as url:
        yield cli_env(tmp_path, server=url) | {"CORRAL_APP": "hello"}


def test_deploy_uploads_what_git_would_and_prints_the_build(
    env: dict[str, str], state: State, tmp_path: Path
):
    repo = git_repo(tmp_path / "hello", env)
    (repo / ".gitignore").write_text("secret.txt\n.venv/\n*.pyc\n")
    (repo / "app.py").write_text("print('hi')\n")
    (repo / "secret.txt").write_text("do not upload")
    (repo / ".venv" / "lib").mkdir(parents=True)
    (repo / ".venv" / "lib" / "big.so").write_bytes(b"\0" * 100)
    (repo / "cache.pyc").write_bytes(b"\0")
    git("add", "app.py", ".gitignore", cwd=repo, env=env)
    (repo / "untracked.py").write_text("x = 1\n")
    result = corral("deploy", "-a", "hello", env=env, cwd=repo)
    assert result.returncode == 0, result.stderr
    [upload] = state.uploads
    assert upload["names"] == {".gitignore", "app.py", "untracked.py"}
    assert upload["content_type"] == "application/gzip"
    assert upload["owners"] == {(0, "")}
    lines = result.stdout.splitlines()
    assert "-----> Building hello" in lines
    assert "corral-status: not really" in lines  # only the last line is the marker
    assert "corral-status: succeeded v3" not in result.stdout
    assert lines[-1] == "Deployed hello v3 http://hello.localhost:8080/"


def test_deploy_outside_git_skips_virtualenvs_and_caches(
    env: dict[str, str], state: State, tmp_path: Path
):
    source = tmp_path / "plain"
    for name in ("app.py", "pkg/mod.py", ".venv/x.py", "pkg/__pycache__/mod.pyc", ".git/HEAD"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("x")
    result = corral("deploy", str(source), env=env)
    assert result.returncode == 0, result.stderr
    assert state.uploads[0]["names"] == {"app.py", "pkg/mod.py"}


def test_failed_build_exits_non_zero_with_a_summary(env: dict[str, str], state: State, tmp_path):
    state.build_outcome = "failed"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("x")
    result = corral("deploy", str(tmp_path / "src"), env=env)
    assert result.returncode == 1
    assert "-----> Building hello" in result.stdout
    assert "corral-status: failed" not in result.stdout
    assert result.stderr.strip().startswith("error: Build failed; nothing that was serving changed")


def test_logs_tail_ends_cleanly_on_ctrl_c(env: dict[str, str]):
    process = subprocess.Popen(
        [sys.executable, "-m", "corral", "logs", "--tail"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.strip() == "2026-11-24T10:00:00.000001+00:00 app[web.1]: first"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
