"""``corral new``: scaffold a Flask, Django or FastAPI app, ready for ``git push``."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
from rich.console import Console

from corral.cli.output import err_console
from corral.config import Settings
from corral.errors import UserError
from corral.scaffold import TEMPLATES, create_project, validate_name, validate_python


def _usable(python: str) -> bool:
    try:
        validate_python(python)
    except UserError:
        return False
    return True


def require_installed(python: str, settings: Settings) -> None:
    """Refuse a ``--python`` no interpreter on this host provides, naming the ones that are."""
    # imported here: finding interpreters is the builder's, and only --python needs it
    from corral.builder.environment import uv_bin
    from corral.builder.python import installed_interpreters

    found = installed_interpreters(settings.pyenv_root, uv_bin())
    everyone = dict.fromkeys(f"{i.version.major}.{i.version.minor}" for i in found)
    minors = [minor for minor in everyone if _usable(minor)]
    if python not in minors:
        raise UserError(
            f"Python {python} is not installed on this host (installed: "
            f"{', '.join(minors) or 'none'}); pass --python with one of those, "
            f"or install it first (`uv python install {python}`)."
        )


@click.command("new")
@click.argument("name")
@click.option(
    "--python",
    metavar="X.Y",
    help="Python version written to .python-version (default: the one corral runs on).",
)
@click.option(
    "--git/--no-git",
    default=True,
    show_default=True,
    help="Create a git repository on branch main with a first commit.",
)
@click.option(
    "--template",
    type=click.Choice(list(TEMPLATES)),
    default="flask",
    show_default=True,
    help="The kind of app: Flask (with Bootstrap), Django or FastAPI.",
)
@click.option(
    "--frontend",
    is_flag=True,
    help="Add a package.json whose npm build bundles assets/ with esbuild for the page.",
)
def new(name: str, python: str | None, git: bool, template: str, frontend: bool) -> None:
    """Create NAME/: an app with its tests, a Procfile and what corral builds it from."""
    # Checked as typed: Path("../x").name alone would look fine.
    validate_name(name)
    settings = Settings.load()
    if python:
        require_installed(validate_python(python), settings)
    python = python or settings.default_python
    git_found = shutil.which("git") is not None
    create_project(
        Path(name), python=python, git=git and git_found, template=template, frontend=frontend
    )

    # The name is validated (letters, digits, '-', '_'), so it is safe as rich markup.
    console = Console(highlight=False)
    repository = " in a git repository on branch main" if git and git_found else ""
    kind = {"flask": "Flask", "django": "Django", "fastapi": "FastAPI"}[template]
    extra = " with an npm front end" if frontend else ""
    console.print(
        f"[green]Created[/] [bold]{name}/[/]: a {kind} app{extra} for Python {python}{repository}."
    )
    if git and not git_found:
        err_console.rich.print(
            "[yellow]warning:[/] git was not found, so no repository was created."
        )
    console.print()
    console.print("Next steps:")
    console.print(f"  cd {name}")
    console.print("  cp .env.example .env      [dim]# optional: local settings[/]")
    if template == "django":
        console.print("  corral local:run python manage.py migrate   [dim]# the local database[/]")
    if frontend:
        console.print("  npm install && npm run build   [dim]# the front end, for corral local[/]")
    console.print("  corral local              [dim]# run it as it will run when deployed[/]")
    console.print("  corral local:run pytest   [dim]# run its tests[/]")
    console.print(f"  corral apps:create {name} && git push corral main   [dim]# deploy it[/]")


COMMANDS = [new]
