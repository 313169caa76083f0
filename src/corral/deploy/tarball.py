"""Unpacking an uploaded source tarball without letting it write outside the build dir.

Members with absolute paths or ``..`` parts, symlinks, hard links and device files are
refused outright (the upload is rejected, nothing is written); so is a tarball larger,
unpacked, than the limit.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from corral.errors import UserError

#: Unpacked size limit: a guard against decompression bombs.
MAX_UNPACKED = 1024 * 1024 * 1024


class BadTarball(UserError):
    """The uploaded tarball is malformed or tries to escape the build directory."""


def _check_member(member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise BadTarball(
            f"The tarball member {member.name!r} points outside the source directory; "
            "upload a tarball with relative paths only."
        )
    if member.issym() or member.islnk():
        raise BadTarball(
            f"The tarball member {member.name!r} is a link; links are not accepted in "
            "uploads, replace it with the file it points to."
        )
    if not (member.isfile() or member.isdir()):
        raise BadTarball(
            f"The tarball member {member.name!r} is a device, FIFO or other special file; "
            "upload regular files and directories only."
        )


def extract(stream: BinaryIO, dest: Path, *, limit: int = MAX_UNPACKED) -> int:
    """Unpack a (gzipped) tarball from ``stream`` into the empty directory ``dest``.

    Each member is checked before it is written, so nothing lands outside ``dest``; a
    refused member fails the whole upload and the caller discards ``dest``. Returns the
    number of files.
    """
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            members = []
            total = 0
            for member in archive:  # a streamed tarball is read once, in order
                _check_member(member)
                total += member.size
                if total > limit:
                    raise BadTarball(
                        f"The tarball unpacks to more than {limit >> 20} MB; "
                        "leave large files out (.slugignore) and deploy again."
                    )
                members.append(member)
                if member.isfile():
                    target = dest / member.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = archive.extractfile(member)
                    assert source is not None
                    with open(target, "wb") as out:
                        while chunk := source.read(1 << 20):
                            out.write(chunk)
                    target.chmod(0o755 if member.mode & 0o111 else 0o644)
                else:
                    (dest / member.name).mkdir(parents=True, exist_ok=True)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BadTarball(
            f"The upload is not a readable tarball ({exc}); send a gzipped tar of the source."
        ) from None
    return sum(1 for m in members if m.isfile())
