"""A git remote added under one of the server's names keeps working after a login under
another (``localhost`` then ``127.0.0.1``), and a refused token's hint names ``corral login``.
Against a real ``corral server`` and real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.cli import cli_env, corral, git_repo
from support.server import Server


def ls_remote(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "ls-remote", "corral"],
        cwd=repo,
        env=env | {"GIT_TERMINAL_PROMPT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_remote_keeps_working_after_login_under_another_name(server: Server, tmp_path: Path):
    env = cli_env(tmp_path)
    assert server.api.post("/apps", json={"name": "hello"}).status_code == 201
    login = corral(
        "login", "--server", f"http://localhost:{server.port}", env=env, input=server.token
    )
    assert login.returncode == 0, login.stderr
    repo = git_repo(tmp_path / "hello", env)
    assert corral("git:remote", "-a", "hello", env=env, cwd=repo).returncode == 0
    assert ls_remote(repo, env).returncode == 0

    again = corral(
        "login", "--server", f"http://127.0.0.1:{server.port}", env=env, input=server.token
    )
    assert again.returncode == 0, again.stderr
    listed = ls_remote(repo, env)
    assert listed.returncode == 0, listed.stderr


def test_a_refused_token_at_push_time_names_corral_login(server: Server, tmp_path: Path):
    env = cli_env(tmp_path)
    assert server.api.post("/apps", json={"name": "hello"}).status_code == 201
    url = f"http://127.0.0.1:{server.port}"
    assert corral("login", "--server", url, env=env, input=server.token).returncode == 0
    repo = git_repo(tmp_path / "hello", env)
    assert corral("git:remote", "-a", "hello", env=env, cwd=repo).returncode == 0
    credentials = Path(env["CORRAL_CREDENTIALS"])
    credentials.write_text(credentials.read_text().replace(server.token, "revoked-token"))
    refused = ls_remote(repo, env)
    assert refused.returncode != 0
    assert f"corral login --server {url}" in refused.stderr
