"""The pre-receive hook of every app repository: deploy what is pushed to main or master.

git runs it with one ``old new ref`` line per pushed ref on stdin, before any ref moves;
what it prints reaches the pusher as ``remote:`` lines, and a non-zero exit rejects the
push, so a failed build or release changes nothing.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from corral.config import Settings
from corral.deploy.pipeline import STATUS_PREFIX, DeployPipeline
from corral.store import Store

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


def _export(commit: str, dest: Path) -> None:
    archive = subprocess.Popen(["git", "archive", "--format=tar", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.stdout.close()  # type: ignore[union-attr]
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {commit} failed")


def main(app: str) -> int:
    """Deploy the pushed commit of ``app``; exit status 1 rejects the push."""
    commit, refusal = check_refs(sys.stdin.read().splitlines())
    if refusal:
        _say(f" !     {refusal}")
        return 1
    if commit is None:
        return 0
    settings = Settings.load()
    store = Store.for_settings(settings)
    pipeline = DeployPipeline(settings, store)
    with tempfile.TemporaryDirectory(prefix=f"corral-push-{app}-") as tmp:
        _export(commit, Path(tmp))
        ok = False
        for line in pipeline.deploy_source(app, Path(tmp), f"Deploy {commit[:7]}"):
            if line.startswith(STATUS_PREFIX):
                ok = line.removeprefix(STATUS_PREFIX).startswith("succeeded")
            else:
                _say(line)
    if not ok:
        _say(" !     Push rejected: the deploy failed, nothing changed.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
