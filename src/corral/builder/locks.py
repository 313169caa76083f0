"""Turn a Poetry, Pipenv or pylock lock file into what uv (or pip) installs exactly.

- ``poetry.lock``: ``poetry export --format requirements.txt --only main`` (Poetry's own
  reading of its lock: the main group, every package pinned with its hashes). Poetry
  refuses a lock out of date with ``pyproject.toml``; its message fails the build.
- ``Pipfile.lock``: ``pipenv verify`` (the lock matches the Pipfile), then
  ``pipenv requirements --hash``: the ``default`` packages with their hashes.
- ``pylock.toml``: uv installs it as it is, less the project itself (which an exported
  lock lists as an editable directory): the project goes into the slug as for any other.

The tools run as the build's user (``run_as``) in the source tree; their output is written
by the builder into a fresh directory of its own, which the user can read but not change.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from corral.appusers import AppUser
from corral.builder.commands import as_user, run_streaming
from corral.builder.log import BuildLog
from corral.errors import BuildError

__all__ = ["LOCK_TOOLS", "exported_lock"]

#: The lock files read through their own tool, and that tool.
LOCK_TOOLS = {"poetry.lock": "poetry", "Pipfile.lock": "pipenv"}
#: What the tools are told, whoever runs them: no prompts, spinners or virtualenvs made.
TOOL_ENVIRON = {
    "POETRY_NO_INTERACTION": "1",
    "POETRY_VIRTUALENVS_CREATE": "false",
    "PIPENV_NOSPIN": "1",
    "PIPENV_YES": "1",
    "PIPENV_IGNORE_VIRTUALENVS": "1",
    "PIPENV_VERBOSITY": "-1",
}

_HEADER = re.compile(r"^\s*\[")
_PATH = re.compile(r'(\bpath = ")([^"]+)(")')


def run_captured(
    command: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: BuildLog,
    what: str,
    run_as: AppUser | None = None,
) -> str:
    """Run ``command`` and return its output; what it says on stderr is shown as detail
    lines, and when it fails its last line (the tool's own message) fails the build."""
    try:
        done = subprocess.run(
            list(command),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
            **as_user(run_as),
        )
    except OSError as exc:
        raise BuildError(f"Could not start {command[0]} for {what} ({exc.strerror}).") from None
    said = [line.rstrip() for line in done.stderr.splitlines() if line.strip()]
    for line in said:
        log.detail(line)
    if done.returncode != 0:
        last = said[-1] if said else f"exit status {done.returncode}"
        raise BuildError(f"{what} failed: {last.removeprefix('Error: ')}")
    return done.stdout


@contextlib.contextmanager
def exported_lock(
    source: Path,
    manifest: str,
    tool: Callable[[str], Path],
    env: dict[str, str],
    log: BuildLog,
    run_as: AppUser | None = None,
) -> Iterator[Path]:
    """The file to install ``manifest`` from (for ``-r``), valid while the context lasts.

    ``tool(name)`` is the executable of tool ``name``, installed when first asked for.
    """
    env = {**env, **TOOL_ENVIRON}
    with tempfile.TemporaryDirectory(prefix="corral-lock-") as scratch:
        out = Path(scratch)
        out.chmod(0o755)  # the installer runs as the build's user: it reads, never writes
        capture = functools.partial(run_captured, cwd=source, env=env, log=log, run_as=run_as)
        if manifest == "poetry.lock":
            export = [str(tool("poetry")), "export", "--format", "requirements.txt"]
            text = capture([*export, "--only", "main"], what="poetry export (main group)")
            target = _write(out / "requirements.txt", text)
        elif manifest == "Pipfile.lock":
            pipenv = str(tool("pipenv"))
            what = "pipenv verify (is Pipfile.lock up to date with the Pipfile?)"
            run_streaming([pipenv, "verify"], cwd=source, env=env, log=log, what=what,
                          run_as=run_as)  # fmt: skip
            text = capture([pipenv, "requirements", "--hash"], what="pipenv requirements")
            target = _write(out / "requirements.txt", text)
        else:
            target = _write(out / "pylock.toml", pylock_without_project(source))
        yield target


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o644)
    return path


def pylock_without_project(source: Path) -> str:
    """``source``'s ``pylock.toml`` less the project itself (a directory at ``.``), its other
    local paths made absolute (the file is installed from elsewhere)."""
    text = (source / "pylock.toml").read_text(encoding="utf-8", errors="replace")
    try:
        lock = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BuildError(
            f"pylock.toml is not valid TOML ({exc}); fix it and build again."
        ) from None
    project = {
        str(package.get("name"))
        for package in lock.get("packages", [])
        if os.path.normpath(str(package.get("directory", {}).get("path", "-"))) == "."
    }
    kept: list[str] = []
    block: list[str] = []
    for line in [*text.splitlines(), "[end]"]:
        if _HEADER.match(line) and not line.lstrip().startswith(("[packages.", "[[packages.")):
            if not (block and _names(block) & project):
                kept += block
            block = []
            if line.strip() == "[[packages]]":
                block = [line]
                continue
        (block if block else kept).append(line)
    kept.pop()  # the "[end]" sentinel
    absolute = [_PATH.sub(lambda m: m[1] + _absolute(source, m[2]) + m[3], ln) for ln in kept]
    return "\n".join(absolute) + "\n"


def _names(block: list[str]) -> set[str]:
    return {m[1] for line in block if (m := re.match(r'^name = "([^"]+)"', line))}


def _absolute(source: Path, path: str) -> str:
    return path if os.path.isabs(path) else str((source / path).resolve())
