"""``git push`` over HTTP: each app's bare repository, served through ``git http-backend``.

The repository's pre-receive hook runs the deploy (:mod:`corral.deploy.hook`), so its
output reaches the pusher as ``remote:`` lines and a failed build rejects the push before
any ref moves. A push through the API hands the deploy back to the API process: the
backend is given one end of a socket pair (:data:`HANDOFF_ENV`), and :func:`serve_hook`
runs the deploy the hook asks for on the other, in a thread, streaming its lines back.
Only the backend and its children hold that end, so nothing else can ask.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from corral.config import Settings
from corral.deploy.protocol import HANDOFF_ENV, STATUS_PREFIX
from corral.errors import UserError
from corral.files import atomic_write

#: A deploy of one pushed source tree: (source, description) -> its output lines.
Deploy = Callable[[Path, str], Generator[str, None, None]]
#: The most a hook's request may be (a commit, a directory, git's variables).
_REQUEST_LIMIT = 65536

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


def export_commit(commit: str, dest: Path, *, cwd: Path, env: dict[str, str]) -> None:
    """Write the tree of ``commit`` into ``dest``, with git run in ``cwd`` with ``env``."""
    archive = subprocess.Popen(
        ["git", "archive", "--format=tar", commit], cwd=cwd, env=env, stdout=subprocess.PIPE
    )
    assert archive.stdout is not None
    try:
        subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    finally:  # reaped even when tar fails: this runs in the long-lived API worker
        archive.stdout.close()
        code = archive.wait()
    if code != 0:
        raise RuntimeError(f"git archive {commit} failed")


@dataclass(frozen=True)
class HookRequest:
    """What the hook asks for: a commit, and where and how git can read it (quarantine)."""

    commit: str
    cwd: Path
    git_environ: dict[str, str]

    @classmethod
    def parse(cls, data: bytes) -> HookRequest | None:
        """The request in ``data`` (see :func:`corral.deploy.hook.handoff_request`)."""
        fields = data.rstrip(b"\n").decode("utf-8", "surrogateescape").split("\0")
        if len(fields) < 2:
            return None
        commit, cwd, *pairs = fields
        if not (len(commit) in (40, 64) and all(c in "0123456789abcdef" for c in commit)):
            return None
        environ = dict(pair.partition("=")[::2] for pair in pairs)
        return cls(commit, Path(cwd), {k: v for k, v in environ.items() if k.startswith("GIT_")})


def _read_request(sock: socket.socket) -> HookRequest | None:
    """The hook's request, or None if the backend ended without a hook asking."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk or len(data) + len(chunk) > _REQUEST_LIMIT:
            return None
        data += chunk
    return HookRequest.parse(data)


def serve_hook(sock: socket.socket, deploy: Deploy) -> None:
    """Export and deploy the commit the hook asks for on ``sock``, sending back each line.

    A hook that goes away (the pusher hung up) ends the deploy as if the hook had run it.
    """
    with sock:
        try:
            request = _read_request(sock)
        except OSError:
            return
        if request is None:
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        with tempfile.TemporaryDirectory(prefix="corral-push-") as tmp:
            try:
                export_commit(
                    request.commit, Path(tmp), cwd=request.cwd, env={**env, **request.git_environ}
                )
            except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
                with contextlib.suppress(OSError):
                    sock.sendall(f" !     Could not read the pushed commit ({exc}).\n".encode())
                    sock.sendall(f"{STATUS_PREFIX}failed\n".encode())
                return
            _relay(sock, deploy(Path(tmp), f"Deploy {request.commit[:7]}"))


def _relay(sock: socket.socket, lines: Generator[str, None, None]) -> None:
    try:
        for line in lines:
            sock.sendall(line.encode("utf-8", "replace") + b"\n")
    except OSError:
        return
    except Exception as exc:  # a bug: the pusher is told, and the push fails cleanly
        with contextlib.suppress(OSError):
            sock.sendall(f" !     The deploy crashed ({type(exc).__name__}: {exc}).\n".encode())
            sock.sendall(f"{STATUS_PREFIX}failed\n".encode())
        raise
    finally:
        lines.close()


class BackendResponse:
    """A running ``git http-backend``: its CGI status, headers, and a body to stream.

    With ``deploy``, the repository's hook hands the push's deploy to it (:func:`serve_hook`).
    """

    def __init__(self, env: dict[str, str], body: IO[bytes], deploy: Deploy | None = None) -> None:
        self._handoff: socket.socket | None = None
        theirs: socket.socket | None = None
        if deploy is not None:
            self._handoff, theirs = socket.socketpair()
            env = {**env, HANDOFF_ENV: str(theirs.fileno())}
        try:
            self.process = subprocess.Popen(
                ["git", "http-backend"],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=() if theirs is None else (theirs.fileno(),),
            )
        except BaseException:
            if self._handoff is not None:
                self._handoff.close()
            raise
        finally:
            if theirs is not None:
                theirs.close()  # the backend and its children hold it now
        if self._handoff is not None and deploy is not None:
            threading.Thread(target=serve_hook, args=(self._handoff, deploy), daemon=True).start()
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
            if self._handoff is not None:  # a deploy still going: its hook is gone
                with contextlib.suppress(OSError):
                    self._handoff.shutdown(socket.SHUT_RDWR)
