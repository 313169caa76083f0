"""``corral local``, ``corral local:run`` and ``corral env``: run an app on this machine.

The app's environment comes from the builder, exactly as a deploy builds it, but lives
under ``CORRAL_HOME`` rather than in the source tree; ``.env`` supplies config vars.
``corral local`` runs the Procfile like foreman: ``PORT`` is the base port plus 100 per
process type (in Procfile order) plus 1 per instance.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from corral.builder import Slug, build
from corral.builder.log import INDENT
from corral.builder.procfile import process_types
from corral.cli.output import err_console
from corral.config import Settings
from corral.errors import UserError
from corral.local.dotenv import env_file_vars
from corral.local.manager import DEFAULT_GRACE, Manager
from corral.local.plan import (
    base_port,
    check_ports_free,
    parse_formation,
    plan_processes,
    process_specs,
)
from corral.local.printer import Printer
from corral.runtime.environ import process_environ

__all__ = ["COMMANDS", "env", "local", "local_run"]


@dataclass(frozen=True)
class _App:
    """Where the app is: its directory (as given, and absolute) and its Procfile, if named."""

    shown: Path
    root: Path
    procfile: Path | None


def _app(app_dir: Path | None, procfile: Path | None) -> _App:
    shown = app_dir or (procfile.parent if procfile else Path("."))
    if not shown.is_dir():
        raise UserError(f"{shown} is not a directory; pass the app's directory with -d.")
    return _App(shown, shown.resolve(), procfile.resolve() if procfile else None)


def _config(app: _App, env_files: Sequence[Path], override: bool) -> dict[str, str]:
    """Config vars from the ``.env`` files (default: the app's ``.env``, if there is one)."""
    return env_file_vars(env_files, app.shown / ".env", os.environ, override=override)


class _BuildOutput:
    """Build lines for commands whose own output matters more: shown once real work starts.

    A reused environment prints only ``----->`` step lines; detail lines (installs,
    warnings) mean a real build, so from the first one on everything is shown.
    """

    def __init__(self, verbose: bool) -> None:
        self.streaming = verbose
        self.held: list[str] = []

    def __call__(self, line: str) -> None:
        if not self.streaming and line.startswith(INDENT):
            self.streaming = True
            for held in self.held:
                _print_build_line(held)
            self.held.clear()
        if self.streaming:
            _print_build_line(line)
        else:
            self.held.append(line)


def _print_build_line(line: str) -> None:
    err_console.rich.print(line, markup=False, highlight=False, style="dim")


def _build(
    app: _App, home: Path | None, emit: Callable[[str], None], *, processes: bool = True
) -> Slug:
    return build(
        app.root,
        Settings.load(home),
        snapshot=False,
        procfile=app.procfile,
        require_processes=processes,
        emit=emit,
    )


def _options(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One decorator applying several click options, in the order given."""

    def apply(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        return function

    return apply


_PATH = click.Path(path_type=Path)
_app_options = _options(
    click.option(
        "-d", "--app-dir", type=_PATH, help="The app's directory (default: the Procfile's, else .)."
    ),
    click.option("-f", "--procfile", type=_PATH, help="The Procfile (default: the app's)."),
    click.option("--home", type=_PATH, help="corral's home (default: $CORRAL_HOME)."),
)
_env_options = _options(
    click.option(
        "-e",
        "--env-file",
        "env_files",
        multiple=True,
        type=_PATH,
        help="Read config vars from this file (default: the app's .env); repeatable.",
    ),
    click.option(
        "--override-env",
        is_flag=True,
        help="Let .env values replace variables already set in your environment.",
    ),
)


@click.command("local")
@click.argument("processes", nargs=-1, metavar="[PROCESS]...")
@_app_options
@_env_options
@click.option(
    "-p",
    "--port",
    type=click.IntRange(1, 65535),
    help="Base port (default: $PORT, else 5000); +100 per process type, +1 per instance.",
)
@click.option(
    "-m",
    "--formation",
    multiple=True,
    metavar="NAME=COUNT,...",
    help="How many of each process type to run, e.g. web=2,worker=1 (all=N for every type).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE,
    show_default=True,
    help="Seconds processes get to stop after SIGTERM, before SIGKILL.",
)
def local(
    processes: tuple[str, ...],
    app_dir: Path | None,
    procfile: Path | None,
    home: Path | None,
    env_files: tuple[Path, ...],
    override_env: bool,
    port: int | None,
    formation: tuple[str, ...],
    grace: float,
) -> None:
    """Run the app's Procfile (or only PROCESS...) in the app's own environment.

    PROCESS is a process type, or NAME=COUNT,... to run that many. Every process type
    runs but `release` (a deploy's release phase), which runs only when named. Ctrl-C stops
    everything; when one process exits, the others are stopped and its exit code is
    corral's.
    """
    app = _app(app_dir, procfile)
    # `corral local web=2,worker=1` works as in `heroku local`: names with counts.
    pairs = [p for p in processes if "=" in p]
    counts = parse_formation([*formation, *pairs])
    names = tuple(p for p in processes if "=" not in p)
    selected = names + tuple(name for name in parse_formation(pairs) if name not in names)
    # Bad names and a bad .env fail before any install, not after.
    found = process_types(app.root, app.procfile)
    config = _config(app, env_files, override_env)
    first_port = base_port(port, {**os.environ, **config})
    plan_processes(list(found.commands), selected, counts, first_port)

    slug = _build(app, home, _print_build_line)
    planned = plan_processes(list(slug.process_types), selected, counts, first_port)
    check_ports_free(planned)

    printer = Printer(Console(highlight=False, soft_wrap=True))
    manager = Manager(printer, grace=grace)
    for spec in process_specs(slug, planned, config=config, environ=os.environ, cwd=app.root):
        manager.add(spec)
    sys.exit(manager.run())


@click.command(
    "local:run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@_app_options
@_env_options
@click.option("-v", "--verbose", is_flag=True, help="Show the build's steps even when reused.")
def local_run(
    command: tuple[str, ...],
    app_dir: Path | None,
    procfile: Path | None,
    home: Path | None,
    env_files: tuple[Path, ...],
    override_env: bool,
    verbose: bool,
) -> None:
    """Run COMMAND once in the app's environment with .env loaded, e.g. `pytest`.

    COMMAND replaces corral, so it owns the terminal and its exit code is corral's. Put
    corral's options before COMMAND.
    """
    app = _app(app_dir, procfile)
    config = _config(app, env_files, override_env)
    slug = _build(app, home, _BuildOutput(verbose), processes=False)
    environ = process_environ(slug, base=os.environ, config=config, dyno="run.1")
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(app.root)
    try:
        os.execvpe(command[0], list(command), environ)
    except FileNotFoundError:
        error = UserError(
            f"{command[0]}: command not found in the app's environment or on PATH; "
            "add its package to the app's requirements or check the spelling."
        )
        error.exit_code = 127
        raise error from None
    except PermissionError:
        error = UserError(f"{command[0]} is not executable; check its permissions.")
        error.exit_code = 126
        raise error from None


@click.command("env")
@_app_options
@click.option("--path", "path_only", is_flag=True, help="Print only the environment's path.")
@click.option("-v", "--verbose", is_flag=True, help="Show the build's steps even when reused.")
def env(
    app_dir: Path | None, procfile: Path | None, home: Path | None, path_only: bool, verbose: bool
) -> None:
    """Show where the app's environment is and how to activate it in a shell."""
    app = _app(app_dir, procfile)
    slug = _build(app, home, _BuildOutput(verbose), processes=False)
    if path_only:
        click.echo(str(slug.env_path))
        return
    again = ["corral", "env", "--path"]
    if app_dir is not None:
        again += ["-d", str(app_dir)]
    if procfile is not None:
        again += ["-f", str(procfile)]
    if home is not None:
        again += ["--home", str(home)]
    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"[bold]Environment[/] {escape(str(slug.env_path))} "
        f"(Python {slug.python_version}, {len(slug.freeze)} packages)",
    )
    console.print("Activate it in your shell:")
    console.print(f'  . "$({shlex.join(again)})/bin/activate"', markup=False)
    console.print("Or run one command in it, with .env loaded:")
    console.print("  corral local:run COMMAND", markup=False)


COMMANDS = [local, local_run, env]
