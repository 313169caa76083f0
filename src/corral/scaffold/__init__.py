"""Scaffolding for ``corral new``: a Flask, Django or FastAPI app, ready for ``git push``.

Each template's files live in ``templates/<name>/`` as real files; ``--frontend`` adds
those of ``templates/frontend/`` (a ``package.json`` whose build bundles ``assets/`` with
esbuild into a file the page loads). They contain Jinja syntax of their own,
so the few variables are filled in by replacing ``__MARKER__`` strings, not by a template
engine. Dotfiles are stored as ``dot-NAME`` so they cannot act on corral's own tree.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from corral.errors import UserError

__all__ = ["TEMPLATES", "TEMPLATES_DIR", "create_project", "validate_name", "validate_python"]

#: The files of new projects, one directory per template.
TEMPLATES_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Template:
    """One starter: where ``--frontend``'s bundle goes and the tag its page loads it with."""

    bundle: str
    script: str


TEMPLATES = {
    "flask": Template(
        "static/bundle.js",
        "  <script src=\"{{ url_for('static', filename='bundle.js') }}\"></script>",
    ),
    "django": Template("static/bundle.js", "  <script src=\"{% static 'bundle.js' %}\"></script>"),
    "fastapi": Template(
        "app/static/bundle.js",
        "  <script src=\"{{ url_for('static', path='bundle.js') }}\"></script>",
    ),
}

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_PYTHON = re.compile(r"3\.(\d{1,2})(\.\d{1,2})?")
#: Flask 3.1 needs Python 3.9 or newer.
_OLDEST_MINOR = 9
_DOT_PREFIX = "dot-"
#: Variables of the environment that would point git at some other repository.
_GIT_REPO_VARS = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
    }
)
_FALLBACK_IDENTITY = ["-c", "user.name=corral", "-c", "user.email=corral@localhost"]
_FIRST_COMMIT_MESSAGE = "Create the app with corral new"


def validate_name(name: str) -> str:
    """Return ``name`` if it can name a project directory (and an app), else raise UserError."""
    if not _NAME.fullmatch(name):
        raise UserError(
            f"{name!r} is not a valid project name; use a letter followed by up to 63 "
            "letters, digits, '-' or '_' (for example: hello-world)."
        )
    return name


def validate_python(version: str) -> str:
    """Return ``version`` if it is a Python the app can run on (3.9 or newer), else raise."""
    match = _PYTHON.fullmatch(version)
    if not match or int(match.group(1)) < _OLDEST_MINOR:
        raise UserError(
            f"{version!r} is not a Python version the app can use; "
            f"pass --python 3.{_OLDEST_MINOR} or newer, as MAJOR.MINOR (for example: 3.12)."
        )
    return version


def create_project(
    target: Path, *, python: str, git: bool, template: str = "flask", frontend: bool = False
) -> None:
    """Create the project directory ``target`` from ``template`` (with ``frontend``, its npm
    build too) and, if ``git``, a repository with one commit.

    All or nothing: the files are written (and committed) in a hidden sibling directory that
    is renamed to ``target`` at the end, so a refusal or a failure leaves nothing behind.
    """
    target = Path(target)
    validate_name(target.name)
    validate_python(python)
    chosen = TEMPLATES[template]
    _check_target(target)
    staging = target.parent / f".{target.name}.corral-new-{secrets.token_hex(4)}"
    try:
        staging.mkdir()
    except OSError as error:
        raise UserError(
            f"cannot create {target} ({error.strerror}); "
            "run corral new in a directory you can write to."
        ) from error
    script = f"{chosen.script}\n" if frontend else ""
    replacements = {
        "__PROJECT_NAME__": target.name,
        "__PYTHON_VERSION__": python,
        "__NPM_NAME__": target.name.lower().replace("_", "-"),
        "__BUNDLE_PATH__": chosen.bundle,
        "__FRONTEND_SCRIPT__\n": script,
    }
    try:
        _copy_template(TEMPLATES_DIR / template, staging, replacements)
        if frontend:
            _copy_template(TEMPLATES_DIR / "frontend", staging, replacements)
            with (staging / ".gitignore").open("a", encoding="utf-8") as ignore:
                ignore.write(f"\n# The front end: installed and built by every deploy\n"
                             f"node_modules/\n{chosen.bundle}\n{chosen.bundle}.map\n")  # fmt: skip
        if git:
            _first_commit(staging)
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UserError(
            f"{target} already exists and is not a directory; choose another name or remove it."
        )
    if target.is_dir() and any(target.iterdir()):
        raise UserError(
            f"{target}/ already exists and is not empty; choose another name or remove it first."
        )


def _output_name(part: str) -> str:
    return "." + part.removeprefix(_DOT_PREFIX) if part.startswith(_DOT_PREFIX) else part


def _is_template_file(relative: Path) -> bool:
    # Real dotfiles in template/ are local debris (.pytest_cache, .ruff_cache), never ours.
    return not any(
        part.startswith(".") or part == "__pycache__" or part.endswith(".pyc")
        for part in relative.parts
    )


def _copy_template(template: Path, destination: Path, replacements: dict[str, str]) -> None:
    for source in sorted(template.rglob("*")):
        relative = source.relative_to(template)
        if source.is_dir() or not _is_template_file(relative):
            continue
        output = destination.joinpath(*(_output_name(part) for part in relative.parts))
        output.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8")
        for marker, value in replacements.items():
            text = text.replace(marker, value)
        output.write_text(text, encoding="utf-8", newline="")


def _move_into_place(staging: Path, target: Path) -> None:
    # rename(2) replaces an empty directory and refuses a non-empty one, so a directory
    # filled in since _check_target is never overwritten.
    try:
        staging.rename(target)
    except OSError as error:
        raise UserError(
            f"cannot create {target} ({error.strerror}); choose another name or remove it first."
        ) from error


def _git_environ() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in _GIT_REPO_VARS}


def _git(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # git stays in our process group: Ctrl-C stops it too, and a signing key can prompt.
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as error:
        raise UserError("git is not installed; install it or rerun with --no-git.") from error


def _has_identity(repo: Path, env: dict[str, str]) -> bool:
    return all(
        _git(["config", key], repo, env).returncode == 0 for key in ("user.name", "user.email")
    )


def _first_commit(repo: Path) -> None:
    env = _git_environ()
    steps: list[tuple[str, list[str]]] = [
        ("create a repository", ["init", "-q"]),
        # Works on every git, unlike `git init -b main` (2.28+).
        ("name the branch main", ["symbolic-ref", "HEAD", "refs/heads/main"]),
        ("add the files", ["add", "--all"]),
    ]
    for what, args in steps:
        _check_git(_git(args, repo, env), what)
    identity = [] if _has_identity(repo, env) else _FALLBACK_IDENTITY
    commit = [*identity, "commit", "-q", "-m", _FIRST_COMMIT_MESSAGE]
    _check_git(_git(commit, repo, env), "make the first commit")


def _check_git(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        raise UserError(
            f"git could not {what} for the new project; fix what git reports above, "
            "or rerun with --no-git.",
            details=output,
        )
