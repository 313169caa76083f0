"""``git push`` over HTTP: each app's bare repository, served through ``git http-backend``.

The repository's pre-receive hook runs the deploy (:mod:`corral.deploy.hook`), so its
output reaches the pusher as ``remote:`` lines and a failed build rejects the push before
any ref moves.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from corral.config import Settings
from corral.errors import UserError
from corral.files import atomic_write

HOOK = """#!/bin/sh
# Installed by corral: deploys what is pushed to main or master.
exec {python} -m corral.deploy.hook {app}
"""


def repo_path(settings: Settings, app: str) -> Path:
    """The app's bare repository."""
    return settings.apps_dir / app / "repo.git"


def ensure_repo(settings: Settings, app: str) -> Path:
    """Create the app's bare repository and its deploy hook, once."""
    repo = repo_path(settings, app)
    hook = repo / "hooks" / "pre-receive"
    if hook.is_file():
        return repo
    repo.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "--quiet", "--bare", str(repo)], check=True, capture_output=True)
    subprocess.run(
        ["git", "config", "http.receivepack", "true"], cwd=repo, check=True, capture_output=True
    )
    text = HOOK.format(python=sys.executable, app=app)
    atomic_write(hook, text, mode=0o700)
    return repo


def move_repo(settings: Settings, old: str, new: str) -> None:
    """Move ``old``'s repository to ``new`` (``apps:rename``); its hook deploys ``new``."""
    source = repo_path(settings, old)
    if not source.is_dir():
        return
    target = repo_path(settings, new)
    target.parent.mkdir(parents=True, exist_ok=True)
    source.rename(target)
    atomic_write(
        target / "hooks" / "pre-receive", HOOK.format(python=sys.executable, app=new), mode=0o700
    )


def backend_environ(settings: Settings, app: str, rest: str, request_env: dict) -> dict[str, str]:
    """The CGI environment for ``git http-backend`` and, through it, the deploy hook.

    It starts from the platform's own environment, which the build needs (proxies, CA
    bundles, pyenv), minus git's repository variables; only named request values are added.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "HTTP_"))}
    env.update(
        GIT_PROJECT_ROOT=str(settings.apps_dir),
        GIT_HTTP_EXPORT_ALL="1",
        PATH_INFO=f"/{app}/repo.git/{rest}",
        REMOTE_USER="corral",
        CORRAL_HOME=str(settings.home),
    )
    for key in (
        "REQUEST_METHOD",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "REMOTE_ADDR",
        "SERVER_PROTOCOL",
        "HTTP_CONTENT_ENCODING",
        "HTTP_GIT_PROTOCOL",
    ):
        if request_env.get(key):
            env[key] = str(request_env[key])
    if "HTTP_GIT_PROTOCOL" in env:
        env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"]
    return env


class BackendResponse:
    """A running ``git http-backend``: its CGI status, headers, and a body to stream."""

    def __init__(self, env: dict[str, str], body: IO[bytes]) -> None:
        self.process = subprocess.Popen(
            ["git", "http-backend"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        threading.Thread(target=self._feed, args=(body,), daemon=True).start()
        self.status, self.headers = self._read_head()

    def _feed(self, body: IO[bytes]) -> None:
        assert self.process.stdin is not None
        try:
            while chunk := body.read(65536):
                self.process.stdin.write(chunk)
        except (BrokenPipeError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def _read_head(self) -> tuple[int, list[tuple[str, str]]]:
        assert self.process.stdout is not None
        status, headers = 200, list[tuple[str, str]]()
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise UserError("git http-backend ended without an answer.")
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                return status, headers
            name, _, value = text.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            else:
                headers.append((name.strip(), value.strip()))

    def body(self) -> Iterator[bytes]:
        """The response body as git writes it (the deploy's output streams through it)."""
        assert self.process.stdout is not None
        try:
            while chunk := self.process.stdout.read1(65536):  # type: ignore[attr-defined]
                yield chunk
        finally:
            self.process.stdout.close()
            self.process.wait()
