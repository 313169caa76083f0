"""The pre-receive hook of every app repository: deploy what is pushed to main or master.

git runs it with one ``old new ref`` line per pushed ref on stdin, before any ref moves;
what it prints reaches the pusher as ``remote:`` lines, and a non-zero exit rejects the
push, so a failed build or release changes nothing.

Pushed through the API, the hook hands the deploy to the API process that runs ``git
http-backend`` (it has the builder loaded already) over the socket whose descriptor is in
``CORRAL_DEPLOY_FD``: one line asks (:func:`handoff_request`), and the deploy's lines come
back as they are made. Run any other way, it deploys in its own process. So this module
imports only ``os``, ``socket`` and ``sys`` on the way; the pipeline only when needed.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import TYPE_CHECKING

from corral.deploy.protocol import HANDOFF_ENV, STATUS_PREFIX

if TYPE_CHECKING:
    from collections.abc import Iterator

DEPLOY_BRANCHES = ("refs/heads/main", "refs/heads/master")
ZERO = "0" * 40


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def check_refs(lines: list[str]) -> tuple[str | None, str | None]:
    """(the commit to deploy, or None; a refusal message, or None) for the pushed refs."""
    target = None
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        _old, new, ref = parts
        if ref not in DEPLOY_BRANCHES:
            branch = ref.removeprefix("refs/heads/")
            return None, (
                f"Pushing {ref} does not deploy; deploy that branch with "
                f"`git push corral {branch}:main`."
            )
        if new.strip("0") == "":
            return None, "Deleting the deployed branch is not allowed."
        target = new
    return target, None


def handoff_request(commit: str, cwd: str, environ: dict[str, str]) -> bytes:
    """What the hook sends the API: the commit, its directory and git's variables for it.

    git gives a pre-receive hook the pushed objects in a quarantine directory that only
    its ``GIT_*`` variables name, so the API exports the commit with those. NUL-separated
    fields, ended by a newline (git's paths here are the platform's own: no newlines).
    """
    fields = [commit, cwd, *(f"{k}={v}" for k, v in environ.items() if k.startswith("GIT_"))]
    return "\0".join(fields).encode("utf-8", "surrogateescape") + b"\n"


def handed_over(fd: int, commit: str) -> Iterator[str]:
    """The deploy of ``commit`` as the API process runs it, line by line as it comes.

    It ends at the verdict: what the API does after it (pruning old slugs) is not waited for.
    """
    with socket.socket(fileno=fd) as sock:
        sock.sendall(handoff_request(commit, os.getcwd(), dict(os.environ)))
        with sock.makefile("r", encoding="utf-8", errors="replace") as answer:
            for line in answer:
                yield line.rstrip("\n")
                if line.startswith(STATUS_PREFIX):
                    return


def _in_process(app: str, commit: str) -> Iterator[str]:
    """The deploy run by the hook itself (a push that did not come through the API)."""
    import tempfile
    from pathlib import Path

    from corral.config import Settings
    from corral.deploy.git import export_commit
    from corral.deploy.pipeline import DeployPipeline
    from corral.store import Store

    settings = Settings.load()
    pipeline = DeployPipeline(settings, Store.for_settings(settings))
    with tempfile.TemporaryDirectory(prefix=f"corral-push-{app}-") as tmp:
        export_commit(commit, Path(tmp), cwd=Path.cwd(), env=dict(os.environ))
        yield from pipeline.deploy_source(app, Path(tmp), f"Deploy {commit[:7]}")


def main(app: str) -> int:
    """Deploy the pushed commit of ``app``; exit status 1 rejects the push."""
    commit, refusal = check_refs(sys.stdin.read().splitlines())
    if refusal:
        _say(f" !     {refusal}")
        return 1
    if commit is None:
        return 0
    handoff = os.environ.get(HANDOFF_ENV, "")
    lines = handed_over(int(handoff), commit) if handoff.isdigit() else _in_process(app, commit)
    status = None
    for line in lines:
        if line.startswith(STATUS_PREFIX):
            status = line.removeprefix(STATUS_PREFIX)
        else:
            _say(line)
    ok = status is not None and status.startswith("succeeded")
    if status is None:
        _say(" !     The deploy ended without a verdict (the API stopped?); push again.")
    if not ok:
        _say(" !     Push rejected: the deploy failed, nothing changed.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
