"""What `corral server` decides at start about isolating apps, and says in one line."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from corral.config import Settings
from corral.errors import UserError
from corral.runtime import confinement
from support.cli import corral
from support.processes import free_port


def test_as_an_ordinary_user_apps_share_one_user_and_the_server_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(confinement.pwd, "getpwuid", lambda uid: type("E", (), {"pw_name": "ann"}))
    on, note = confinement.isolation(Settings.load(tmp_path / "home"), True)
    assert not on
    assert note.startswith("apps are not isolated from each other: they all run as ann")
    assert "run corral server as root" in note


@pytest.mark.skipif(os.geteuid() != 0, reason="the checks made as root")
def test_as_root_a_home_other_users_cannot_pass_through_is_refused(tmp_path: Path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    with pytest.raises(UserError) as refused:
        confinement.isolation(Settings.load(closed / "home"), True)
    message = str(refused.value)
    assert f"{closed} is closed to other users (mode 0700)" in message
    assert "--home /var/lib/corral" in message and "--no-isolation" in message
    on, note = confinement.isolation(Settings.load(closed / "home"), False)
    assert not on and "(--no-isolation): they all run as root" in note


@pytest.mark.skipif(os.geteuid() != 0, reason="the checks made as root")
def test_as_root_without_the_account_tools_isolation_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(confinement, "missing_tools", lambda: ["useradd", "groupadd"])
    with pytest.raises(UserError, match="useradd, groupadd not found; install Debian's passwd"):
        confinement.isolation(Settings.load(tmp_path / "home"), True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the checks made as root")
def test_as_root_isolation_is_on_where_it_can_be():
    # /tmp is open to all, as /var/lib is; pytest's own temporary directories are not
    settings = replace(Settings.load("/tmp/corral-nowhere/home"), user_prefix="corral-")
    on, note = confinement.isolation(settings, True)
    assert on
    assert note == "apps isolated: each runs as a user of its own (corral-<app>, uids 40000-49999)"


@pytest.mark.skipif(os.geteuid() != 0, reason="the checks made as root")
def test_the_server_refuses_to_start_isolated_in_a_closed_home(tmp_path: Path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    env = {**os.environ, "CORRAL_CREDENTIALS": str(tmp_path / "credentials.json")}
    env.pop("CORRAL_HOME", None)
    result = corral(
        "server", "--home", str(closed / "home"), "--bind", f"127.0.0.1:{free_port()}",
        env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"Apps cannot be isolated: {closed} is closed to other users" in result.stderr
    assert not (closed / "home" / "admin-token").exists()
