"""The ``corral`` click group, whose commands are imported from their modules on first use."""

from __future__ import annotations

import importlib

import click

from corral import __version__
from corral.cli.commands import COMMAND_MODULES, VERSION

__all__ = ["LazyGroup", "cli"]


class LazyGroup(click.Group):
    """A group whose commands are imported from their modules on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMAND_MODULES.get(cmd_name)
        if module_name is None:
            return None
        module = importlib.import_module(f"corral.cli.{module_name}")
        return next((command for command in module.COMMANDS if command.name == cmd_name), None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, message=VERSION)
def cli() -> None:
    """Heroku-style git push hosting for Python web apps, on a machine you own."""
