"""The deploy's wait for its verdict wakes on the store's commit, not on a poll."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from corral.deploy.changes import Changes
from corral.store import DB_FILENAME, Store

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's")


def test_a_commit_to_the_store_wakes_the_wait(tmp_path: Path) -> None:
    store = Store.open(tmp_path / DB_FILENAME)
    with Changes(tmp_path, names=(DB_FILENAME,)) as changes:
        assert changes.watching
        assert changes.wait(0.05) is False  # nothing written: it sleeps the whole timeout
        store.create_app("hello")
        assert changes.wait(30) is True


def test_files_it_was_not_asked_about_do_not_wake_it(tmp_path: Path) -> None:
    with Changes(tmp_path, names=("corral.",)) as changes:
        (tmp_path / "web.1.log").write_text("app output\n")
        assert changes.wait(0.1) is False
        (tmp_path / "corral.log").write_text("platform line\n")
        assert changes.wait(30) is True


def test_a_directory_not_made_yet_leaves_a_plain_sleep(tmp_path: Path) -> None:
    with Changes(tmp_path / "missing") as changes:
        assert not changes.watching
        assert changes.wait(0.01) is False
