"""The ``corral`` command line: one click group, one module per topic.

A command's module is imported only when that command runs (or help lists it), so
``corral build`` never pays for the HTTP client the server commands need.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import click

from corral import __version__
from corral.cli.common import run_cli

#: Each command's module under ``corral.cli``, in the order ``corral --help`` lists them.
COMMAND_MODULES: dict[str, str] = {
    "build": "build",
    "new": "new",
    "local": "local",
    "local:run": "local",
    "env": "local",
    "server": "server",
    "login": "auth",
    "logout": "auth",
    "whoami": "auth",
    "apps": "apps",
    "apps:create": "apps",
    "apps:info": "apps",
    "apps:destroy": "apps",
    "apps:rename": "apps",
    "open": "apps",
    "maintenance": "apps",
    "maintenance:on": "apps",
    "maintenance:off": "apps",
    "git:remote": "git",
    "git:credential": "git",
    "config": "config",
    "config:get": "config",
    "config:set": "config",
    "config:unset": "config",
    "releases": "releases",
    "releases:info": "releases",
    "releases:output": "releases",
    "rollback": "releases",
    "freeze": "releases",
    "ps": "ps",
    "ps:scale": "ps",
    "ps:restart": "ps",
    "ps:stop": "ps",
    "ps:kill": "ps",
    "ps:memory": "ps",
    "logs": "logs",
    "domains": "domains",
    "domains:add": "domains",
    "domains:remove": "domains",
    "certs": "certs",
    "certs:add": "certs",
    "certs:remove": "certs",
    "certs:refresh": "certs",
    "certs:hsts": "certs",
    "deploy": "deploy",
    "run": "deploy",
    "addons": "addons",
    "addons:create": "addons",
    "addons:info": "addons",
    "addons:attach": "addons",
    "addons:detach": "addons",
    "addons:destroy": "addons",
    "pg:psql": "pg",
    "pg:info": "pg",
    "pg:credentials:rotate": "pg",
    "pg:backups": "pg",
    "pg:backups:capture": "pg",
    "pg:backups:restore": "pg",
    "pg:backups:download": "pg",
    "pg:backups:schedule": "pg",
    "pg:backups:unschedule": "pg",
    "redis:cli": "redis",
    "redis:info": "redis",
    "help": "help",
    "run:detached": "deploy",
}


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
@click.version_option(__version__, prog_name="corral")
def cli() -> None:
    """Heroku-style git push hosting for Python web apps, on a machine you own."""


def main() -> None:
    """Console-script entry point: run the CLI, turning user errors into one clear line."""
    if not sys.warnoptions:
        # A library's DeprecationWarning or getpass's echo warning means nothing to a user;
        # `python -W default -m corral` (or $PYTHONWARNINGS) still shows them to a developer.
        warnings.simplefilter("ignore")
    run_cli(cli)
