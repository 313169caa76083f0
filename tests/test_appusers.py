"""Each app's own system user: created in the configured range, refused when a stranger
holds the name, renamed with the app, and removed without a trace."""

from __future__ import annotations

import grp
import pwd
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from corral.appusers import MAX_NAME, AppUsers, user_name
from corral.config import Settings
from corral.errors import UserError
from support.isolation import needs_root, unique_prefix, users_removed


@pytest.fixture
def users(tmp_path: Path) -> AppUsers:
    with users_removed(unique_prefix()) as prefix:
        settings = replace(
            Settings.load(tmp_path / "home"), user_prefix=prefix, uid_range=(47000, 47999)
        )
        yield AppUsers(settings)


def test_long_app_names_map_to_valid_distinct_user_names():
    long_a, long_b = "a" * 29 + "x", "a" * 29 + "y"
    names = {user_name("corral-", long_a), user_name("corral-", long_b)}
    assert len(names) == 2
    assert all(len(name) <= MAX_NAME and name.startswith("corral-aaaa") for name in names)
    assert user_name("corral-", long_a) == user_name("corral-", long_a)
    assert user_name("corral-", "web") == "corral-web"


@needs_root
def test_a_user_is_created_once_in_the_range_with_private_directories(users: AppUsers):
    user = users.ensure("alpha")
    again = users.ensure("alpha")
    assert again == user
    entry = pwd.getpwnam(user.name)
    assert 47000 <= entry.pw_uid <= 47999 and entry.pw_gid == entry.pw_uid
    assert grp.getgrgid(entry.pw_gid).gr_name == user.name
    assert entry.pw_shell.endswith("nologin")
    for path in (user.dir, user.home, user.tmp, user.cache):
        info = path.stat()
        assert (info.st_uid, info.st_mode & 0o777) == (user.uid, 0o700)
    assert users.ensure("bravo").uid != user.uid
    assert sorted(users.apps()) == ["alpha", "bravo"]


@needs_root
def test_a_strangers_user_of_the_same_name_is_refused(users: AppUsers):
    name = users.name("alpha")
    subprocess.run(["/usr/sbin/useradd", "--no-create-home", name], check=True)
    with pytest.raises(UserError, match=f"{name} already exists and is not corral's"):
        users.ensure("alpha")
    assert pwd.getpwnam(name).pw_gecos == ""  # untouched


@needs_root
def test_rename_and_remove_leave_nothing_behind(users: AppUsers):
    user = users.ensure("alpha")
    (user.home / "note").write_text("kept")
    users.rename("alpha", "gamma")
    renamed = users.lookup("gamma")
    assert renamed is not None and (renamed.name, renamed.uid) == (user.name, user.uid)
    assert (renamed.home / "note").read_text() == "kept"
    assert users.lookup("alpha") is None
    reused = users.ensure("alpha")  # a new app of the old name: a user of its own
    assert reused.name != user.name and reused.uid != user.uid
    assert users.remove("alpha")
    assert users.remove("gamma") is True
    for name in (user.name, reused.name):
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
        with pytest.raises(KeyError):
            grp.getgrnam(name)
    assert not renamed.dir.exists()
    assert users.remove("gamma") is False


def test_a_bad_uid_range_is_refused(monkeypatch):
    monkeypatch.setenv("CORRAL_UIDS", "12-x")
    with pytest.raises(UserError, match=r"\$CORRAL_UIDS is '12-x'"):
        Settings.load("/tmp/nowhere")
