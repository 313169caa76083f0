"""Detect a Python app and what describes its dependencies."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.errors import BuildError

#: Lock files, one per tool; an app may have only one of them.
LOCKS = {
    "uv.lock": "uv",
    "poetry.lock": "Poetry",
    "Pipfile.lock": "Pipenv",
    "pylock.toml": "pylock",
}
#: Files that make a directory a Python app, in the order corral prefers them.
MANIFESTS = (*LOCKS, "requirements.txt", "pyproject.toml", "setup.py")
#: Lock files that need a pyproject.toml with a table of their tool's beside them.
_NEEDS_PYPROJECT = {
    "uv.lock": "a [project] table",
    "poetry.lock": "a [project] or [tool.poetry] table",
}


@dataclass(frozen=True)
class Detection:
    """What kind of Python app a source tree is."""

    #: The file that decided it: one of :data:`MANIFESTS`.
    manifest: str
    #: Parsed ``pyproject.toml`` (empty when there is none).
    pyproject: dict[str, Any] = field(default_factory=dict)

    @property
    def installs_project(self) -> bool:
        """Whether the app is itself a package to install (a build backend or setup.py)."""
        if self.manifest in ("requirements.txt", "Pipfile.lock"):
            return False
        if self.manifest == "poetry.lock":
            poetry = self.pyproject.get("tool", {}).get("poetry", {})
            return "build-system" in self.pyproject and poetry.get("package-mode", True)
        return "build-system" in self.pyproject or self.manifest == "setup.py"

    @property
    def corral_options(self) -> dict[str, Any]:
        """The app's ``[tool.corral]`` table."""
        return self.pyproject.get("tool", {}).get("corral", {})


def read_pyproject(source: Path) -> dict[str, Any]:
    """Parse ``pyproject.toml`` if present; a syntax error is the user's to fix."""
    path = source / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(
            f"pyproject.toml is not valid TOML ({exc}); fix it and build again."
        ) from None


def detect(source: Path) -> Detection:
    """Decide how ``source`` declares its dependencies, or refuse with what to add."""
    if not source.is_dir():
        raise BuildError(f"{source} is not a directory; pass the app's source directory.")
    if not any(source.iterdir()):
        raise BuildError(f"{source} is empty; put an app there (try `corral new`) and build again.")
    pyproject = read_pyproject(source)
    locks = [name for name in LOCKS if (source / name).is_file()]
    if len(locks) > 1:
        named = " and ".join(f"{name} ({LOCKS[name]})" for name in locks)
        raise BuildError(
            f"Found {named}: lock files of more than one tool, so which versions to install "
            "is ambiguous; delete the ones you no longer use and build again."
        )
    if not locks and (source / "Pipfile").is_file():
        raise BuildError(
            "Found a Pipfile but no Pipfile.lock; run `pipenv lock`, commit Pipfile.lock "
            "and build again."
        )
    for manifest in MANIFESTS:
        if not (source / manifest).is_file():
            continue
        if manifest == "pyproject.toml" and "project" not in pyproject:
            continue
        if manifest in _NEEDS_PYPROJECT and not _has_tables(pyproject, manifest):
            raise BuildError(
                f"{manifest} needs a pyproject.toml with {_NEEDS_PYPROJECT[manifest]} beside it."
            )
        return Detection(manifest, pyproject)
    raise BuildError(
        f"No Python app detected in {source}; add a requirements.txt, a pyproject.toml "
        "with a [project] table, a lock file (uv.lock, poetry.lock, Pipfile.lock, "
        "pylock.toml) or a setup.py."
    )


def _has_tables(pyproject: dict[str, Any], manifest: str) -> bool:
    if manifest == "poetry.lock" and "poetry" in pyproject.get("tool", {}):
        return True
    return "project" in pyproject
