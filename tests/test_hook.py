"""Which pushed refs deploy, which are refused with a message saying what to do, and how
the hook hands a deploy to the API process (the pushed commit, the lines back, the verdict)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from corral.config import Settings
from corral.deploy.git import Deploy, HookRequest, ensure_repo, serve_hook
from corral.deploy.hook import check_refs, handoff_request
from corral.deploy.protocol import HANDOFF_ENV, STATUS_PREFIX

OLD, NEW = "1" * 40, "a" * 40


def test_main_and_master_deploy() -> None:
    assert check_refs([f"{OLD} {NEW} refs/heads/main"]) == (NEW, None)
    assert check_refs([f"{'0' * 40} {NEW} refs/heads/master"]) == (NEW, None)


def test_other_branch_is_refused_with_how_to_deploy_it() -> None:
    commit, refusal = check_refs([f"{OLD} {NEW} refs/heads/feature"])
    assert commit is None and "git push corral feature:main" in (refusal or "")


def test_deleting_main_is_refused() -> None:
    commit, refusal = check_refs([f"{OLD} {'0' * 40} refs/heads/main"])
    assert commit is None and "Deleting" in (refusal or "")


def test_tags_are_refused() -> None:
    _, refusal = check_refs([f"{OLD} {NEW} refs/tags/v1"])
    assert refusal and "does not deploy" in refusal


# -- the hand-off to the API process -------------------------------------------------------


def test_the_hook_imports_neither_the_builder_nor_the_store() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, corral.deploy.hook; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    heavy = ("corral.builder", "corral.store", "corral.deploy.pipeline", "corral.config", "httpx")
    assert [name for name in loaded if name.startswith(heavy)] == []


class _Repo:
    """A bare app repository with corral's hook, and a clone to push from."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(home=tmp_path / "home")
        self.bare = ensure_repo(self.settings, "hello")
        self.work = tmp_path / "work"
        self.work.mkdir()
        self.git("init", "-q", "-b", "main")
        (self.work / "app.py").write_text("print('pushed')\n")
        self.git("add", "-A")
        self.git("commit", "-qm", "first")

    def git(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
            cwd=self.work, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip

    def push(self, deploy: Deploy) -> subprocess.Popen[str]:
        """``git push`` with the hook's hand-off served by ``deploy``, as the API serves it."""
        ours, theirs = socket.socketpair()
        threading.Thread(target=serve_hook, args=(ours, deploy), daemon=True).start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env[HANDOFF_ENV] = str(theirs.fileno())
        try:
            return subprocess.Popen(
                ["git", "push", str(self.bare), "main"], cwd=self.work, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                pass_fds=(theirs.fileno(),),
            )  # fmt: skip
        finally:
            theirs.close()

    def deployed(self) -> str | None:
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", "refs/heads/main"],
            cwd=self.bare, capture_output=True, text=True, check=False,
        )  # fmt: skip
        return found.stdout.strip() or None


def test_the_hook_hands_the_deploy_over_and_streams_its_lines(tmp_path: Path) -> None:
    repo = _Repo(tmp_path)
    seen: dict[str, str] = {}
    go_on = threading.Event()

    def deploy(source: Path, description: str) -> Iterator[str]:
        # the pushed tree, read from git's quarantine by the serving side
        seen["app.py"], seen["description"] = (source / "app.py").read_text(), description
        yield "-----> Building in the API"
        go_on.wait(60)  # the line above must reach the pusher while this deploy still runs
        yield STATUS_PREFIX + "succeeded v1"

    push = repo.push(deploy)
    assert push.stderr is not None
    for line in push.stderr:
        if "remote: -----> Building in the API" in line:
            break
    assert not go_on.is_set() and push.poll() is None
    go_on.set()
    assert push.wait(60) == 0
    head = repo.git("rev-parse", "HEAD").stdout.strip()
    assert seen == {"app.py": "print('pushed')\n", "description": f"Deploy {head[:7]}"}
    assert repo.deployed() == head


def test_a_failed_handed_over_deploy_rejects_the_push(tmp_path: Path) -> None:
    repo = _Repo(tmp_path)

    def deploy(source: Path, description: str) -> Iterator[str]:
        yield " !     No Procfile"
        yield STATUS_PREFIX + "failed"

    push = repo.push(deploy)
    _, err = push.communicate(timeout=60)
    assert push.returncode != 0, err
    assert "remote:  !     No Procfile" in err
    assert "Push rejected: the deploy failed, nothing changed." in err
    assert repo.deployed() is None


def test_a_deploy_that_ends_without_a_verdict_rejects_the_push_saying_so(tmp_path: Path) -> None:
    repo = _Repo(tmp_path)

    def deploy(source: Path, description: str) -> Iterator[str]:
        yield "-----> Building"

    push = repo.push(deploy)
    _, err = push.communicate(timeout=60)
    assert push.returncode != 0
    assert "ended without a verdict" in err and "Traceback" not in err
    assert repo.deployed() is None


def test_pushed_without_the_api_the_hook_deploys_in_its_own_process(tmp_path: Path) -> None:
    repo = _Repo(tmp_path)  # its home's store has no app "hello": the pipeline says so
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "CORRAL_"))}
    env["CORRAL_HOME"] = str(repo.settings.home)
    push = subprocess.run(
        ["git", "push", str(repo.bare), "main"], cwd=repo.work, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert push.returncode != 0
    assert "remote:  !     " in push.stderr and "hello" in push.stderr, push.stderr
    assert "Push rejected" in push.stderr and "Traceback" not in push.stderr
    assert repo.deployed() is None


def test_the_api_reads_the_hooks_request_and_nothing_else() -> None:
    sent = handoff_request(
        NEW, "/repo.git", {"GIT_DIR": ".", "GIT_QUARANTINE_PATH": "/q", "HOME": "/r"}
    )
    request = HookRequest.parse(sent)
    assert request == HookRequest(
        NEW, Path("/repo.git"), {"GIT_DIR": ".", "GIT_QUARANTINE_PATH": "/q"}
    )
    assert HookRequest.parse(b"\n") is None
    assert HookRequest.parse(b"not-a-commit\0/repo.git\n") is None
