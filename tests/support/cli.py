"""Running the real ``corral`` CLI (and git) in a subprocess, the way a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.stub_api import TOKEN


def corral(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``corral ARGS`` with ``env`` to completion, capturing what a user would see."""
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_corral(
    *args: str, home: Path | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``corral ARGS`` against the corral home ``home``, for the builder's tests.

    The caller's environment is the base on purpose: builds install from the network, so
    they need this host's proxy and CA settings and its Python installations.
    """
    env = dict(os.environ)
    if home is not None:
        env["CORRAL_HOME"] = str(home)
    return corral(*args, env=env, cwd=cwd, timeout=timeout)


def cli_env(tmp_path: Path, server: str | None = None, token: str | None = TOKEN) -> dict[str, str]:
    """An environment for the CLI with HOME and the credentials file inside ``tmp_path``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CORRAL_", "GIT_")) and key != "NO_COLOR"
    }
    env["HOME"] = str(tmp_path / "home")
    env["CORRAL_CREDENTIALS"] = str(tmp_path / "home" / "credentials.json")
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["COLUMNS"] = "200"
    (tmp_path / "home").mkdir(exist_ok=True)
    if server is not None:
        env["CORRAL_SERVER"] = server
    if token is not None and server is not None:
        env["CORRAL_TOKEN"] = token
    return env


def git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    """Run git in ``cwd``; its stdout."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def git_repo(path: Path, env: dict[str, str]) -> Path:
    """A fresh git work tree at ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", "-b", "main", cwd=path, env=env)
    return path
