"""The slug: a read-only snapshot of an app's source plus what it takes to run it.

The metadata lives inside the slug at ``.corral/slug.json`` so a slug directory is
self-contained; :func:`load_slug` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from corral.errors import UserError

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
