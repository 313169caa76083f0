"""Uploaded tarballs: unpacked inside the build dir, or refused with nothing written outside."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from corral.deploy.tarball import BadTarball, extract


def tarball(*members: tarfile.TarInfo, data: dict[str, bytes] | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member in members:
            content = (data or {}).get(member.name, b"")
            member.size = len(content) if member.isfile() else 0
            archive.addfile(member, io.BytesIO(content) if member.isfile() else None)
    buffer.seek(0)
    return buffer


def file(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info


def test_unpacks_files_and_directories(tmp_path: Path) -> None:
    folder = tarfile.TarInfo("pkg")
    folder.type = tarfile.DIRTYPE
    upload = tarball(
        folder,
        file("pkg/app.py"),
        file("bin/run", 0o755),
        data={"pkg/app.py": b"print(1)", "bin/run": b"#!/bin/sh"},
    )
    (tmp_path / "src").mkdir()
    assert extract(upload, tmp_path / "src") == 2
    assert (tmp_path / "src" / "pkg" / "app.py").read_bytes() == b"print(1)"
    assert (tmp_path / "src" / "bin" / "run").stat().st_mode & 0o111


@pytest.mark.parametrize("name", ["../evil.py", "/etc/evil.py", "ok/../../evil.py"])
def test_members_outside_the_directory_are_refused(tmp_path: Path, name: str) -> None:
    dest = tmp_path / "build" / "src"
    dest.mkdir(parents=True)
    with pytest.raises(BadTarball, match="outside the source directory"):
        extract(tarball(file(name), data={name: b"x"}), dest)
    assert not (tmp_path / "build" / "evil.py").exists()
    assert not (tmp_path / "evil.py").exists()


def test_symlinks_are_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("passwd")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(BadTarball, match="is a link"):
        extract(tarball(link), tmp_path)
    assert not (tmp_path / "passwd").exists()


def test_device_files_are_refused(tmp_path: Path) -> None:
    device = tarfile.TarInfo("null")
    device.type = tarfile.CHRTYPE
    with pytest.raises(BadTarball, match="device"):
        extract(tarball(device), tmp_path)


def test_garbage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadTarball, match="not a readable tarball"):
        extract(io.BytesIO(b"this is not a tarball at all" * 100), tmp_path)


def test_unpacked_size_limit(tmp_path: Path) -> None:
    upload = tarball(file("big.bin"), data={"big.bin": b"0" * 5000})
    with pytest.raises(BadTarball, match="unpacks to more than"):
        extract(upload, tmp_path, limit=4000)
