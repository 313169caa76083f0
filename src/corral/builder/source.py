"""Copy an app's source into a slug: skip what is ignored, never follow links outside it.

``.git``, ``__pycache__`` and the patterns in the top-level ``.gitignore`` and
``.slugignore`` (gitignore syntax) stay out of the slug. A symlink that points inside
the tree is kept as a symlink; one that points outside is left out with a warning.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from corral.errors import BuildError

ALWAYS_IGNORED = (".git/", "__pycache__/", ".corral/", "*.pyc")


@dataclass
class Snapshot:
    """What was copied: a digest of the tree and warnings about what was left out."""

    digest: str
    files: int
    warnings: list[str] = field(default_factory=list)


def _ignore_spec(source: Path) -> pathspec.PathSpec:
    lines = list(ALWAYS_IGNORED)
    for name in (".gitignore", ".slugignore"):
        path = source / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _checked_name(rel: str) -> str:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(rel).decode("utf-8", errors="backslashreplace")
        raise BuildError(
            f"The file name {shown!r} is not valid UTF-8; rename it (or add it to "
            ".slugignore) and build again."
        ) from None
    return rel


def _walk(source: Path, spec: pathspec.PathSpec) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Yield (relative path, entry) for every kept entry, parents before children."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(source / rel_dir) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                rel = _checked_name(f"{rel_dir}{entry.name}")
                is_dir = entry.is_dir(follow_symlinks=False)
                if spec.match_file(rel + "/" if is_dir else rel):
                    continue
                yield rel, entry
                if is_dir:
                    stack.append(rel + "/")


def _link_target_inside(source_root: Path, link: Path) -> str | None:
    """The link's target, made relative, if it stays inside the tree; else None."""
    target = (link.parent / os.readlink(link)).resolve(strict=False)
    try:
        target.relative_to(source_root)
    except ValueError:
        return None
    return os.path.relpath(target, link.parent.resolve())


def copy_source(
    source: Path, dest: Path, *, warn: Callable[[str], None] = lambda _: None
) -> Snapshot:
    """Copy ``source`` into the new directory ``dest`` and digest what was copied."""
    source_root = source.resolve()
    spec = _ignore_spec(source)
    digest = hashlib.sha256()
    snapshot = Snapshot(digest="", files=0)
    dest.mkdir(parents=True)
    for rel, entry in _walk(source, spec):
        target = dest / rel
        if entry.is_symlink():
            link_to = _link_target_inside(source_root, Path(entry.path))
            if link_to is None:
                message = f"{rel} links outside the source tree; it was left out of the slug."
                snapshot.warnings.append(message)
                warn(message)
                continue
            os.symlink(link_to, target)
            digest.update(f"L {rel}\0{link_to}\0".encode())
        elif entry.is_dir():
            target.mkdir()
        elif entry.is_file():
            mode = entry.stat().st_mode
            file_hash = _copy_file(Path(entry.path), target)
            executable = "x" if mode & stat.S_IXUSR else "-"
            digest.update(f"F {rel}\0{executable}{file_hash}\0".encode())
            snapshot.files += 1
        # sockets, fifos and devices have no place in a slug: skipped silently
    snapshot.digest = digest.hexdigest()
    return snapshot


def tree_digest(root: Path) -> str:
    """A digest of the tree under ``root`` as :func:`copy_source` would copy it (names,
    contents, execute bits and links), without copying it."""
    digest = hashlib.sha256()
    for rel, entry in _walk(root, _ignore_spec(root)):
        if entry.is_symlink():
            digest.update(f"L {rel}\0{os.readlink(entry.path)}\0".encode())
        elif entry.is_file(follow_symlinks=False):
            content = hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()
            executable = "x" if entry.stat().st_mode & stat.S_IXUSR else "-"
            digest.update(f"F {rel}\0{executable}{content}\0".encode())
    return digest.hexdigest()


def _copy_file(src: Path, dst: Path) -> str:
    """Copy one file (content and mode) and return its sha256."""
    file_hash = hashlib.sha256()
    with open(src, "rb") as reader, open(dst, "wb") as writer:
        while chunk := reader.read(1 << 20):
            file_hash.update(chunk)
            writer.write(chunk)
    shutil.copymode(src, dst)
    return file_hash.hexdigest()


def make_read_only(root: Path) -> None:
    """Remove write permission from everything under ``root`` (links untouched)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode & ~0o222)
        os.chmod(dirpath, os.stat(dirpath).st_mode & ~0o222)


def remove_tree(root: Path) -> None:
    """Delete ``root`` even when :func:`make_read_only` has locked it."""
    if not root.exists() and not root.is_symlink():
        return
    if os.geteuid() == 0:  # root needs no write bits; chmod-ing a tree an app's code shaped
        shutil.rmtree(root)  # could follow a link it swapped in, rmtree never does
        return
    for dirpath, _dirnames, _filenames in os.walk(root):
        os.chmod(dirpath, os.stat(dirpath).st_mode | stat.S_IWUSR | stat.S_IXUSR)
    shutil.rmtree(root)
