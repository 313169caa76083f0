"""The slug: a read-only snapshot of an app's source plus what it takes to run it.

The metadata lives inside the slug at ``.corral/slug.json`` so a slug directory is
self-contained; :func:`load_slug` reads it back. A slug's size, as Heroku counts it, is
everything it runs from: its own files and its environment's (:func:`refuse_oversized`).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from corral.builder.source import remove_tree
from corral.errors import BuildError, UserError

METADATA = Path(".corral") / "slug.json"
#: The PATH every process of a slug starts from, before its virtualenv's ``bin``: the
#: builder checks programs against it, so it must be what dynos really get.
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Slug:
    """One build's output, as recorded in the slug's metadata file."""

    id: str
    app: str
    path: Path
    env_path: Path
    env_hash: str
    python_version: str
    installer: str
    process_types: dict[str, str]
    #: The process types corral inferred (not read from a Procfile).
    inferred: list[str] = field(default_factory=list)
    #: Directories prepended to ``PYTHONPATH`` (the project itself, when installed).
    pythonpath: list[str] = field(default_factory=list)
    freeze: list[str] = field(default_factory=list)
    source_digest: str = ""
    built_at: str = ""
    build_seconds: float = 0.0
    steps: list[dict[str, object]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """The slug as plain JSON values (paths as strings)."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["env_path"] = str(self.env_path)
        return data


def write_metadata(slug: Slug, directory: Path | None = None) -> None:
    """Write the slug's metadata file into ``directory`` (default: the slug's own path)."""
    target = (directory or slug.path) / METADATA
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(slug.to_json(), indent=2, sort_keys=True) + "\n")


def load_slug(path: Path) -> Slug:
    """Read the slug at ``path`` back from its metadata file."""
    try:
        data = json.loads((path / METADATA).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is not a corral slug (no {METADATA}); build it first.") from None
    data["path"] = Path(data["path"])
    data["env_path"] = Path(data["env_path"])
    return Slug(**data)


def tree_size(root: Path) -> int:
    """Bytes in the files under ``root`` (each file once, however many links it has; links
    not followed; 0 when it does not exist)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def megabytes(size: int) -> str:
    """``701 MB`` for a size in bytes (``0.3 MB`` below one)."""
    mb = size / (1024 * 1024)
    return f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB"


def refuse_oversized(slug_dir: Path, env_path: Path, limit_mb: int) -> None:
    """Fail the build if the slug at ``slug_dir`` and its environment pass ``limit_mb``."""
    source, environment = tree_size(slug_dir), tree_size(env_path)
    if source + environment > limit_mb * 1024 * 1024:
        raise BuildError(
            f"The slug is {megabytes(source + environment)} (source {megabytes(source)}, "
            f"environment {megabytes(environment)}), over the {limit_mb} MB limit; leave large "
            "files out with .slugignore, or raise $CORRAL_SLUG_MAX_MB on the server."
        )


def remove_renamed_slugs(old: Path, new: Path) -> None:
    """After ``apps:rename``: remove from ``old`` (the slugs directory of the app's old name)
    what ``new`` now holds, and ``old`` itself and its parent once empty."""
    for slug in new.iterdir() if new.is_dir() else ():
        remove_tree(old / slug.name)
    for empty in (old, old.parent):
        with contextlib.suppress(OSError):
            empty.rmdir()
