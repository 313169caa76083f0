"""Helpers for the API-client CLI tests: serve a contract-following Flask app, run the real CLI.

Each test module defines its own tiny Flask app implementing the endpoints it needs exactly
as docs/api.md says; these helpers only serve it on loopback and run ``corral`` against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

TOKEN = "s3cret-token-for-tests"


def api_error(status: int, error_id: str, message: str) -> tuple[Any, int]:
    """An error answer shaped like docs/api.md's."""
    return jsonify({"id": error_id, "message": message}), status


def require_token(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer 401 unless the request carries ``Authorization: Bearer TOKEN``."""

    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return api_error(401, "unauthorized", "Missing or wrong API token.")
        return view(*args, **kwargs)

    return checked


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


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


def corral(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI as a subprocess, the way a user would."""
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
