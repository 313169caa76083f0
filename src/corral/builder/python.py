"""Choose the Python an app asks for and find that interpreter on this host.

The request comes from ``.python-version``, then ``runtime.txt``, then ``requires-python``
in ``pyproject.toml``, then the default. Interpreters are found on ``PATH``
(``python3.X``), among pyenv versions and among uv-managed Pythons.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from corral.appusers import AppUser
from corral.builder.ownership import blocked_for
from corral.errors import BuildError, PythonNotFound

_VERSION_FILE_LINE = re.compile(r"^(?:python-?|cpython-?)?(\d+(?:\.\d+){0,2})$")


@dataclass(frozen=True)
class PythonRequest:
    """What the app asked for, and where it said so."""

    specifier: SpecifierSet
    text: str
    origin: str


@dataclass(frozen=True, order=True)
class Interpreter:
    """One Python interpreter installed on this host."""

    version: Version
    executable: Path


def _exact_or_prefix(text: str) -> SpecifierSet:
    """``3.12`` means any 3.12.x; ``3.12.1`` means exactly that release."""
    parts = text.split(".")
    if len(parts) == 3:
        return SpecifierSet(f"=={text}")
    return SpecifierSet(f"=={text}.*")


def _parse_version_line(text: str, origin: str) -> PythonRequest:
    line = text.strip().lower()
    match = _VERSION_FILE_LINE.match(line)
    if not match:
        raise BuildError(
            f"{origin} asks for Python {text.strip()!r}, which is not a version; "
            "write a version such as 3.12 or 3.12.1."
        )
    return PythonRequest(_exact_or_prefix(match.group(1)), match.group(1), origin)


def python_request(source: Path, pyproject: dict, default: str) -> PythonRequest:
    """The Python version ``source`` asks for, following the documented precedence."""
    version_file = source / ".python-version"
    if version_file.is_file():
        lines = [
            ln.strip()
            for ln in version_file.read_text(errors="replace").splitlines()
            if ln.strip() and not ln.startswith("#")
        ]
        if lines:
            return _parse_version_line(lines[0], ".python-version")
    runtime = source / "runtime.txt"
    if runtime.is_file() and runtime.read_text(errors="replace").strip():
        return _parse_version_line(runtime.read_text(errors="replace"), "runtime.txt")
    requires = pyproject.get("project", {}).get("requires-python")
    if requires:
        try:
            return PythonRequest(SpecifierSet(requires), requires, "requires-python")
        except InvalidSpecifier:
            raise BuildError(
                f"requires-python {requires!r} in pyproject.toml is not a version "
                "specifier; write one such as '>=3.11'."
            ) from None
    return PythonRequest(_exact_or_prefix(default), default, "default")


def _version_of(executable: Path) -> Version | None:
    try:
        out = subprocess.run(
            [str(executable), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=10,
            env={"PATH": os.defpath},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    try:
        return Version(out.stdout.strip()) if out.returncode == 0 else None
    except InvalidVersion:
        return None


def _path_candidates() -> list[Path]:
    found = []
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if not directory or "shims" in Path(directory).parts:
            continue  # pyenv shims re-dispatch; the real interpreters are found below
        for name in ("python3", *tuple(f"python3.{minor}" for minor in range(6, 20))):
            candidate = Path(directory) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                found.append(candidate)
    return found


def _pyenv_interpreters(pyenv_root: Path) -> list[Interpreter]:
    found: list[Interpreter] = []
    versions = pyenv_root / "versions"
    if not versions.is_dir():
        return found
    for entry in versions.iterdir():
        executable = entry / "bin" / "python3"
        try:
            version = Version(entry.name)
        except InvalidVersion:
            continue  # virtualenvs and named builds: not a plain interpreter
        if executable.is_file() and not version.is_prerelease:
            found.append(Interpreter(version, executable))
    return found


def _uv_interpreters(uv: str) -> list[Interpreter]:
    """Pythons installed by ``uv python install``, read off their directory names."""
    try:
        out = subprocess.run([uv, "python", "dir"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    root = Path(out.stdout.strip())
    if out.returncode != 0 or not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = re.match(r"^cpython-(\d+\.\d+\.\d+)-", entry.name)
        executable = entry / "bin" / "python3"
        if match and executable.is_file():
            found.append(Interpreter(Version(match.group(1)), executable))
    return found


@cache
def installed_interpreters(pyenv_root: Path, uv: str) -> tuple[Interpreter, ...]:
    """Every CPython 3 on this host, newest first, one per version."""
    by_version: dict[Version, Interpreter] = {}
    for interp in _pyenv_interpreters(pyenv_root) + _uv_interpreters(uv):
        by_version.setdefault(interp.version, interp)
    for executable in _path_candidates():
        resolved = executable.resolve()
        if any(i.executable.resolve() == resolved for i in by_version.values()):
            continue
        version = _version_of(executable)
        if version is not None and version.major == 3:
            by_version.setdefault(version, Interpreter(version, executable))
    return tuple(sorted(by_version.values(), reverse=True))


def runnable_interpreters(
    interpreters: tuple[Interpreter, ...], user: AppUser
) -> tuple[tuple[Interpreter, ...], dict[Interpreter, str]]:
    """Those of ``interpreters`` that ``user`` can run, and why each other one is skipped."""
    skipped = {i: why for i in interpreters if (why := blocked_for(i.executable, user))}
    return tuple(i for i in interpreters if i not in skipped), skipped


def find_interpreter(
    request: PythonRequest,
    interpreters: tuple[Interpreter, ...],
    skipped: tuple[Interpreter, ...] = (),
) -> Interpreter:
    """The newest installed interpreter satisfying ``request``, or a clear refusal.

    ``skipped``: interpreters installed where the app's user cannot run them.
    """
    for interp in interpreters:
        if request.specifier.contains(interp.version):
            return interp
    unusable = [i for i in skipped if request.specifier.contains(i.version)]
    if unusable:
        raise PythonNotFound(
            f"Python {request.text} (from {request.origin}) is installed only where app "
            f"users cannot run it ({unusable[0].executable}); install it where every user "
            f"can read it, e.g. `UV_PYTHON_INSTALL_DIR=/opt/corral-python uv python install "
            f"{unusable[0].version}`, and build again."
        )
    available = ", ".join(str(i.version) for i in interpreters) or "none"
    raise PythonNotFound(
        f"Python {request.text} (from {request.origin}) is not installed on this host; "
        f"installed versions: {available}. Ask for one of those or install it "
        "(e.g. `uv python install` or pyenv)."
    )


def newer_patch(chosen: Interpreter, interpreters: tuple[Interpreter, ...]) -> Interpreter | None:
    """The newest of ``interpreters`` of ``chosen``'s minor version when it is newer."""
    same = [i for i in interpreters if i.version.release[:2] == chosen.version.release[:2]]
    newest = max(same, default=chosen)
    return newest if newest.version > chosen.version else None
