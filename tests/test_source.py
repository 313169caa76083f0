"""Copying source into a slug: ignores, symlinks, odd names, read-only, digest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.builder.source import copy_source, make_read_only, remove_tree
from corral.errors import BuildError


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_slugignore_gitignore_and_git_stay_out(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / ".git").mkdir(parents=True)
    (src / ".git" / "HEAD").write_text("ref")
    (src / "docs").mkdir()
    (src / "docs" / "big.pdf").write_text("x")
    (src / ".venv" / "bin").mkdir(parents=True)
    (src / "app.py").write_text("app")
    (src / ".slugignore").write_text("docs/\n*.log\n")
    (src / ".gitignore").write_text(".venv/\n")
    (src / "debug.log").write_text("x")
    copy_source(src, tmp_path / "slug")
    assert _tree(tmp_path / "slug") == {"app.py", ".slugignore", ".gitignore"}


def test_symlink_inside_is_kept_outside_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("outside")
    src = tmp_path / "src"
    (src / "static").mkdir(parents=True)
    (src / "static" / "a.css").write_text("css")
    os.symlink("static/a.css", src / "alias.css")
    os.symlink(tmp_path / "secret.txt", src / "leak.txt")
    os.symlink("../../secret.txt", src / "static" / "leak2.txt")
    warnings: list[str] = []
    snapshot = copy_source(src, tmp_path / "slug", warn=warnings.append)
    slug = tmp_path / "slug"
    assert (slug / "alias.css").is_symlink() and (slug / "alias.css").read_text() == "css"
    assert not (slug / "leak.txt").exists() and not (slug / "static" / "leak2.txt").exists()
    assert len(warnings) == 2 and all("outside the source tree" in w for w in warnings)
    assert snapshot.warnings == warnings


def test_non_utf8_file_name_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("app")
    with open(os.fsencode(src) + b"/caf\xe9.txt", "w") as handle:
        handle.write("x")
    with pytest.raises(BuildError, match=r"not valid UTF-8.*rename it"):
        copy_source(src, tmp_path / "slug")


def test_digest_follows_content(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("one")
    first = copy_source(src, tmp_path / "a").digest
    assert copy_source(src, tmp_path / "b").digest == first
    (src / "app.py").write_text("two")
    assert copy_source(src, tmp_path / "c").digest != first


def test_read_only_slug_can_still_be_removed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x")
    copy_source(src, tmp_path / "slug")
    make_read_only(tmp_path / "slug")
    mode = (tmp_path / "slug" / "pkg" / "mod.py").stat().st_mode
    assert mode & 0o222 == 0
    remove_tree(tmp_path / "slug")
    assert not (tmp_path / "slug").exists()
