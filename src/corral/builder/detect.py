"""Detect a Python app and what describes its dependencies."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.errors import BuildError

#: Files that make a directory a Python app, in the order corral prefers them.
MANIFESTS = ("uv.lock", "requirements.txt", "pyproject.toml", "setup.py")


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
        if self.manifest == "requirements.txt":
            return False
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
    for manifest in MANIFESTS:
        if not (source / manifest).is_file():
            continue
        if manifest == "pyproject.toml" and "project" not in pyproject:
            continue
        if manifest == "uv.lock" and "project" not in pyproject:
            raise BuildError("uv.lock needs a pyproject.toml with a [project] table beside it.")
        return Detection(manifest, pyproject)
    if (source / "Pipfile.lock").is_file() or (source / "Pipfile").is_file():
        raise BuildError(
            "Pipenv apps are not supported; export a requirements.txt "
            "(`pipenv requirements > requirements.txt`) and build again."
        )
    if (source / "poetry.lock").is_file():
        raise BuildError(
            "Poetry lock files are not supported; export a requirements.txt "
            "(`poetry export -o requirements.txt`) or declare PEP 621 [project] dependencies."
        )
    raise BuildError(
        f"No Python app detected in {source}; add a requirements.txt, a pyproject.toml "
        "with a [project] table, a uv.lock or a setup.py."
    )
