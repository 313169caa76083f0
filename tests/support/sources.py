"""App sources for build tests: files written from text, and local packages whose build
backend runs the test's code at install time (what a ``setup.py`` does)."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (path → text, dedented) under ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def backend_package(name: str, backend: str) -> dict[str, str]:
    """Files of a local package ``name/`` built by the in-tree ``backend`` module's code:
    needs nothing from an index to build."""
    pyproject = f"""
        [build-system]
        requires = []
        build-backend = "backend"
        backend-path = ["."]
        [project]
        name = "{name}"
        version = "0.1"
    """
    return {f"{name}/pyproject.toml": pyproject, f"{name}/backend.py": backend}
