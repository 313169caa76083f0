"""What the platform keeps is for its own user: the home is closed, secrets are 0600, and
apps' own processes still create files as usual (umask 022)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from corral.runtime import shim
from support.server import Server, git, make_repo

pytestmark = pytest.mark.slow


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_home_and_every_secret_in_it_are_private(server: Server, tmp_path: Path) -> None:
    server.api.post("/apps", json={"name": "quiet"}).raise_for_status()
    git(make_repo(tmp_path, server, "quiet"), "push", "corral", "main")
    assert server.app_get("quiet").text == "hello v1"
    home = server.home
    assert _mode(home) == 0o700
    for secret in ("corral.db", "admin-token", "dashboard-secret", "run/routes.json"):
        assert _mode(home / secret) == 0o600, secret
    assert _mode(Path(server.env["CORRAL_CREDENTIALS"])) == 0o600
    for tree in ("logs", "run", "apps/quiet/repo.git"):
        opened = [p for p in (home / tree).rglob("*") if not p.is_symlink() and _mode(p) & 0o007]
        assert _mode(home / tree) & 0o077 == 0 and not opened, (tree, opened[:5])


def test_a_dyno_creates_files_with_the_usual_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)  # as `corral server` runs
    try:
        status = tmp_path / "status.{pid}"
        argv = ["--log", str(tmp_path), "--dyno", "web.1", "--status", str(status), "--",
                sys.executable, "-c", "import os; print(oct(os.umask(0)))"]  # fmt: skip
        assert shim.main(argv) == 0
    finally:
        os.umask(previous)
    assert "app[web.1]: 0o22" in (tmp_path / "web.1.log").read_text()
