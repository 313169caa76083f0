"""The ``corral`` command line: one click group, one module per topic."""

from __future__ import annotations

import click

from corral import __version__
from corral.cli import (
    apps,
    auth,
    build,
    config,
    deploy,
    domains,
    git,
    local,
    logs,
    new,
    ps,
    releases,
    server,
)
from corral.cli.common import run_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="corral")
def cli() -> None:
    """Heroku-style git push hosting for Python web apps, on a machine you own."""


for _module in (
    build,
    new,
    local,
    server,
    auth,
    apps,
    git,
    config,
    releases,
    ps,
    logs,
    domains,
    deploy,
):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Console-script entry point: run the CLI, turning user errors into one clear line."""
    run_cli(cli)
