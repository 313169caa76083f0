"""``deploy`` (upload a source tarball and stream the build) and ``run`` (a one-off command)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import click

from corral.cli.attach import Session, run_attached
from corral.cli.client import ApiClient, app_path
from corral.cli.git import in_work_tree, resolve_app
from corral.cli.output import Styled, console, human_size
from corral.errors import UserError

#: The largest tarball the CLI uploads (the server answers 413 beyond its own limit).
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
#: Directories never worth uploading when the source is not a git work tree.
SKIPPED_DIRS = frozenset({".git", ".venv", "__pycache__"})

_STATUS = re.compile(r"corral-status: (succeeded|failed)(?: (v\d+))?")


def source_files(source: Path) -> list[str]:
    """Relative paths to upload: git's tracked and unignored files, else all but venvs/caches."""
    if in_work_tree(source):
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=source,
            capture_output=True,
            check=True,
            stdin=subprocess.DEVNULL,
        ).stdout
        names = [os.fsdecode(name) for name in listed.split(b"\0") if name]
        # Tracked files deleted from the work tree are not part of what is deployed.
        return sorted(name for name in set(names) if os.path.lexists(source / name))
    found: list[str] = []
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        base = Path(root).relative_to(source)
        found += [str(base / name) if base != Path(".") else name for name in sorted(files)]
    return found


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(source: Path, names: Iterable[str], out: IO[bytes]) -> int:
    """Write a gzipped tarball of ``names`` (relative to ``source``) to ``out``; its size."""
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name in names:
            archive.add(source / name, arcname=name, recursive=False, filter=_anonymous)
    out.flush()
    size = out.tell()
    out.seek(0)
    return size


def stream_until_marker(lines: Iterable[str], marker: re.Pattern[str]) -> re.Match[str] | None:
    """Print ``lines`` as they come; the last line, if it matches ``marker``, is returned instead.

    A marker-looking line is held back only until the next line proves it was not the last.
    """
    held: str | None = None
    emit: Callable[[str], None] = _echo
    for line in lines:
        if held is not None:
            emit(held)
            held = None
        if marker.fullmatch(line):
            held = line
        else:
            emit(line)
    return marker.fullmatch(held) if held is not None else None


def _echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


@click.command("deploy")
@click.argument(
    "source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    required=False,
)
@click.option("-a", "--app", help="App to deploy (default: $CORRAL_APP or the corral remote).")
def deploy(source: Path, app: str | None) -> None:
    """Upload SOURCE (default: .) and build and release it, without a git push."""
    source = source.resolve()
    name = resolve_app(app, cwd=source)
    names = source_files(source)
    if not names:
        raise UserError(f"{source} has no files to deploy.")
    with tempfile.TemporaryFile() as tarball:
        size = pack(source, names, tarball)
        if size > MAX_UPLOAD_BYTES:
            raise UserError(
                f"The source tarball is {human_size(size)}, over the "
                f"{human_size(MAX_UPLOAD_BYTES)} limit; "
                "add large files to .gitignore (or leave them out of the directory)."
            )
        console.print(
            f"Uploading {len(names)} files ({human_size(size)}) to {name}...",
        )
        with ApiClient.load() as api:
            lines = api.stream(
                "POST",
                app_path(name, "builds"),
                content=tarball,
                headers={"Content-Type": "application/gzip"},
            )
            status = stream_until_marker(lines, _STATUS)
            if status is None:
                raise UserError(
                    "The server closed the connection before the build finished; "
                    f"check `corral releases -a {name}` and deploy again."
                )
            if status.group(1) != "succeeded":
                raise UserError(
                    "Build failed; nothing that was serving changed. "
                    "Fix the error above and deploy again."
                )
            url = api.get(app_path(name)).get("web_url") or ""
    console.print(
        Styled(f"Deployed {name} {status.group(2) or ''}".rstrip(), "green"), f" {url}".rstrip()
    )


_RUN_SETTINGS = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@click.command("run", context_settings=_RUN_SETTINGS)
@click.option("-a", "--app", help="App to run in (default: $CORRAL_APP or the corral remote).")
@click.option("--no-tty", is_flag=True, help="No pseudo-terminal, even from a terminal.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, app: str | None, no_tty: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND once in the app's current release, with its config; exit with its status.

    Interactive: stdin is forwarded, and from a terminal the command gets a pseudo-terminal
    (``corral run bash``). A single argument with spaces is a shell command line.
    """
    name = resolve_app(app)
    terminal = sys.stdin.isatty() and sys.stdout.isatty() and not no_tty
    with ApiClient.load() as api:
        status = run_attached(api, Session(name, command, tty=terminal))
    ctx.exit(min(status, 255))


@click.command("run:detached", context_settings=_RUN_SETTINGS)
@click.option("-a", "--app", help="App to run in (default: $CORRAL_APP or the corral remote).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_detached(app: str | None, command: tuple[str, ...]) -> None:
    """Run COMMAND once in the background; its output goes to the app's logs."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        text = shlex.join(command)
        console.print(f"Running `{text}` on {name}... ", end="")
        dyno = api.post(app_path(name, "one-offs"), json={"command": list(command)})
    console.print(f"up, {dyno['name']}")
    console.print(
        f"See its output with `corral logs --tail -a {name} --dyno {dyno['name']}`; "
        f"stop it with `corral ps:kill {dyno['name']} -a {name}`.",
    )


COMMANDS = [deploy, run, run_detached]
