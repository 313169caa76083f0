"""``corral build``: build an app's source into a slug exactly as a deploy will."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from corral.builder import Slug, build
from corral.cli.config import parse_assignments
from corral.cli.output import err_console
from corral.config import Settings


def _summary(slug: Slug, console: Console) -> None:
    console.print()
    table = Table.grid(padding=(0, 2))
    table.add_row("[bold]Slug[/]", slug.id)
    table.add_row("[bold]Path[/]", str(slug.path))
    table.add_row("[bold]Python[/]", slug.python_version)
    table.add_row("[bold]Environment[/]", f"{slug.env_path} ({slug.installer})")
    table.add_row("[bold]Packages[/]", str(len(slug.freeze)))
    table.add_row("[bold]Built in[/]", f"{slug.build_seconds:.2f}s")
    console.print(table)
    processes = Table("process", "command", box=None, header_style="bold")
    for name, command in slug.process_types.items():
        inferred = " [dim](inferred)[/]" if name in slug.inferred else ""
        processes.add_row(name, command.replace("[", r"\[") + inferred)
    console.print(processes)


@click.command("build")
@click.argument(
    "source", type=click.Path(file_okay=False, path_type=Path), default=".", required=False
)
@click.option(
    "--home", type=click.Path(path_type=Path), help="corral's home (default: $CORRAL_HOME)."
)
@click.option("-a", "--app", help="App the slug belongs to (default: the directory's name).")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Write the slug here instead."
)
@click.option(
    "--installer", type=click.Choice(["uv", "pip"]), help="Override the app's installer choice."
)
@click.option(
    "-e",
    "--env",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="A config var the build sees, as a deploy's would (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def build_command(
    source: Path,
    home: Path | None,
    app: str | None,
    output: Path | None,
    installer: str | None,
    assignments: tuple[str, ...],
    as_json: bool,
) -> None:
    """Build SOURCE (default: .) into a slug, as a deploy would."""
    config = parse_assignments(assignments, example="corral build --env DISABLE_COLLECTSTATIC=1")
    settings = Settings.load(home)
    out = err_console.rich if as_json else Console(highlight=False, soft_wrap=True)
    slug = build(
        source,
        settings,
        app=app,
        output=output.resolve() if output else None,
        installer=installer,
        config=config,
        emit=lambda line: out.print(line, markup=False),
    )
    if as_json:
        click.echo(json.dumps(slug.to_json(), indent=2))
    else:
        _summary(slug, out)


COMMANDS = [build_command]
