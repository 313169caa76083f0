"""git:remote, the git credential helper, and inferring the app from the corral remote."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, jsonify

from support.cli import cli_env, corral, git, git_repo
from support.stub_api import TOKEN, api_error, require_token, serve


def contract_app(seen: list[str]) -> Flask:
    """Apps ``hello`` and ``other`` with empty config; records which app each request named."""
    app = Flask(__name__)

    @app.get("/api/v1/apps/<name>")
    @require_token
    def app_info(name: str):
        seen.append(name)
        if name not in ("hello", "other"):
            return api_error(404, "not_found", f"No app named {name}; see `corral apps`.")
        return jsonify({"name": name, "web_url": f"http://{name}.localhost:8080/"})

    @app.get("/api/v1/apps/<name>/config")
    @require_token
    def config(name: str):
        seen.append(name)
        return jsonify({"GREETING": f"hi from {name}"})

    return app


@pytest.fixture
def seen() -> list[str]:
    return []


@pytest.fixture
def server(seen: list[str]) -> Iterator[str]:
    with serve(contract_app(seen)) as url:
        yield url


def test_app_is_inferred_from_the_corral_remote(server: str, seen: list[str], tmp_path: Path):
    env = cli_env(tmp_path, server=server)
    repo = git_repo(tmp_path / "hello", env)
    git("remote", "add", "corral", f"{server}/git/hello.git", cwd=repo, env=env)
    (repo / "sub").mkdir()
    result = corral("config:get", "GREETING", env=env, cwd=repo / "sub")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi from hello\n"
    assert corral("config:get", "GREETING", "-a", "other", env=env, cwd=repo).returncode == 0
    assert corral("config:get", "GREETING", env=env | {"CORRAL_APP": "other"}).returncode == 0
    assert seen == ["hello", "other", "other"]


def test_no_app_anywhere_is_a_clear_error(server: str, seen: list[str], tmp_path: Path):
    env = cli_env(tmp_path, server=server)
    repo = git_repo(tmp_path / "plain", env)
    result = corral("config", env=env, cwd=repo)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: No app given; pass -a APP or run inside a repository with a corral remote "
        "(corral git:remote -a APP)."
    )
    assert seen == []


def test_git_remote_points_at_the_app_and_keeps_the_token_out_of_git_config(
    server: str, tmp_path: Path
):
    env = cli_env(tmp_path, server=server)
    repo = git_repo(tmp_path / "hello", env)
    result = corral("git:remote", "-a", "hello", env=env, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert git("remote", "get-url", "corral", cwd=repo, env=env).strip() == (
        f"{server}/git/hello.git"
    )
    assert TOKEN not in (repo / ".git" / "config").read_text()
    # Running it again for another app updates the remote instead of failing.
    assert corral("git:remote", "-a", "other", env=env, cwd=repo).returncode == 0
    assert git("remote", "get-url", "corral", cwd=repo, env=env).strip().endswith("/other.git")
    missing = corral("git:remote", "-a", "ghost", env=env, cwd=repo)
    assert missing.returncode == 1
    assert "No app named ghost" in missing.stderr


def test_git_remote_outside_a_repository_says_so(server: str, tmp_path: Path):
    env = cli_env(tmp_path, server=server)
    (tmp_path / "empty").mkdir()
    result = corral("git:remote", "-a", "hello", env=env, cwd=tmp_path / "empty")
    assert result.returncode == 1
    assert "Not inside a git repository" in result.stderr


def save_credentials(env: dict[str, str], server: str) -> None:
    Path(env["CORRAL_CREDENTIALS"]).write_text(json.dumps({"server": server, "token": TOKEN}))


def credential(action: str, protocol: str, host: str, env: dict[str, str]) -> str:
    request = f"protocol={protocol}\nhost={host}\npath=git/hello.git\n\n"
    result = corral("git:credential", action, env=env, input=request)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_credential_helper_answers_only_for_the_corral_server(server: str, tmp_path: Path):
    env = cli_env(tmp_path)
    save_credentials(env, server)
    host = server.removeprefix("http://")
    assert credential("get", "http", host, env) == f"username=corral\npassword={TOKEN}\n"
    assert credential("get", "http", "github.com", env) == ""
    assert credential("get", "https", host, env) == ""
    assert credential("store", "http", host, env) == ""
    assert credential("erase", "http", host, env) == ""


def test_git_asks_the_helper_for_the_token(server: str, tmp_path: Path):
    env = cli_env(tmp_path)
    save_credentials(env, server)
    repo = git_repo(tmp_path / "hello", env)
    assert corral("git:remote", "-a", "hello", env=env, cwd=repo).returncode == 0
    filled = subprocess.run(
        ["git", "credential", "fill"],
        input=f"url={server}/git/hello.git\n\n",
        cwd=repo,
        env=env | {"GIT_TERMINAL_PROMPT": "0"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "username=corral" in filled.splitlines()
    assert f"password={TOKEN}" in filled.splitlines()
