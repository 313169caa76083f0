"""Who owns a build's files and who may run what, when builds run as the app's own user.

An isolated build hands its work directory to the app's user, runs every installer and
hook as that user, then takes the result back: :func:`seal` makes a tree root's (or
root and the app's group's), with no write bits anywhere. Sealing walks with directory
file descriptors and never follows a link, so a tree the user's code shaped (links to
``/etc``, files swapped while it runs) cannot make root change anything outside it; a
file in it that the user does not own (a hard link to someone else's file) is dropped,
never re-owned.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from corral.appusers import AppUser
from corral.errors import BuildError

__all__ = ["ENV_MODES", "Modes", "blocked_for", "give", "runnable_copy", "seal", "slug_modes"]


@dataclass(frozen=True)
class Modes:
    """The owner group and permission bits a sealed tree gets (its owner is root)."""

    gid: int
    dirs: int
    files: int
    programs: int  #: files that had any execute bit


#: Environments: anyone may read and run them (apps share nothing else), nobody writes.
ENV_MODES = Modes(0, 0o555, 0o444, 0o555)


def slug_modes(gid: int) -> Modes:
    """Slugs: the app's group reads and runs them, other users see nothing, nobody writes."""
    return Modes(gid, 0o550, 0o440, 0o550)


def give(root: Path, user: AppUser) -> None:
    """Make everything under ``root`` the user's (links included, never followed)."""
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        os.chown(dirfd, user.uid, user.gid)
        os.chmod(dirfd, os.stat(dirfd).st_mode | stat.S_IRWXU)
        for name in dirnames + filenames:
            if stat.S_ISLNK(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode):
                os.chown(name, user.uid, user.gid, dir_fd=dirfd, follow_symlinks=False)
            elif name in filenames:
                _fix(name, dirfd, lambda fd: os.chown(fd, user.uid, user.gid), (user.uid, user.gid))


def seal(root: Path, builder_uid: int, modes: Modes) -> list[str]:
    """Make ``root`` root's and read-only (see the module); returns what was dropped."""
    dropped: list[str] = []
    for dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        os.chown(dirfd, 0, modes.gid)
        os.chmod(dirfd, modes.dirs)
        for name in dirnames + filenames:
            info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                os.chown(name, 0, modes.gid, dir_fd=dirfd, follow_symlinks=False)
            elif name in filenames and info.st_uid not in (builder_uid, 0):
                os.unlink(name, dir_fd=dirfd)
                dropped.append(os.path.join(dirpath, name))
            elif name in filenames:
                _fix(name, dirfd, lambda fd: _seal_file(fd, modes), (0, modes.gid))
    return dropped


def _seal_file(fd: int, modes: Modes) -> None:
    info = os.fstat(fd)
    os.fchown(fd, 0, modes.gid)  # before the mode: chown clears set-id bits anyway
    if stat.S_ISDIR(info.st_mode):  # swapped in for a file meanwhile: walked next
        os.fchmod(fd, modes.dirs)
    else:
        os.fchmod(fd, modes.programs if info.st_mode & 0o111 else modes.files)


def _fix(name: str, dirfd: int, change: Callable[[int], None], link_owner: tuple[int, int]) -> None:
    """Open ``name`` without following a link (the user may have swapped one in) and apply
    ``change`` to the open file; sockets and other unopenable entries are left alone."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # now a link: owned like one
            os.chown(name, *link_owner, dir_fd=dirfd, follow_symlinks=False)
            return
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            return
        raise
    try:
        change(fd)
    finally:
        os.close(fd)


def blocked_for(path: Path, user: AppUser) -> str | None:
    """Why ``user`` cannot run ``path`` (the directory it cannot enter, or the file), or None.

    Judged from mode bits of every directory on the way, as written and as resolved.
    """
    real = path.resolve()
    for directory in [*reversed(path.parents), *reversed(real.parents)]:
        if not _allowed(directory, user, 0o1):
            return f"app users cannot enter {directory}"
    if not _allowed(real, user, 0o1):
        return f"app users cannot run {real}"
    return None


def _allowed(path: Path, user: AppUser, bit: int) -> bool:
    try:
        info = path.stat()
    except OSError:
        return False
    if info.st_uid == user.uid:
        return bool(info.st_mode & (bit << 6))
    if info.st_gid == user.gid:
        return bool(info.st_mode & (bit << 3))
    return bool(info.st_mode & bit)


def runnable_copy(program: str, user: AppUser, tools_dir: Path) -> str:
    """``program`` if ``user`` can run it, else a root-owned 0755 copy of it in ``tools_dir``."""
    if blocked_for(Path(program), user) is None:
        return program
    copy = _copied(Path(program).resolve(), tools_dir)
    if (why := blocked_for(Path(copy), user)) is not None:
        raise BuildError(
            f"App users cannot run {program}, nor its copy in {tools_dir} ({why}); let every "
            f"user enter the directories above {tools_dir} (chmod o+x), or install "
            f"{Path(program).name} where every user can run it."
        )
    return copy


@cache
def _copied(program: Path, tools_dir: Path) -> str:
    digest = hashlib.sha256(program.read_bytes()).hexdigest()[:12]
    target = tools_dir / f"{program.name}-{digest}"
    if not target.is_file():
        tools_dir.mkdir(parents=True, exist_ok=True)
        tools_dir.chmod(0o755)
        partial = tools_dir / f".{target.name}.{os.getpid()}"
        shutil.copyfile(program, partial)
        partial.chmod(0o755)
        os.replace(partial, target)
    return str(target)
