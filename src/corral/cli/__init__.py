"""The ``corral`` command line: one click group, one module per topic.

A command's module is imported only when that command runs (or help lists it), so
``corral build`` never pays for the HTTP client the server commands need; the group itself
(and click) is imported only when a command line has to be parsed, so ``corral --version``
answers before any of it is loaded.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from corral.cli.commands import COMMAND_MODULES, VERSION

if TYPE_CHECKING:
    import click

__all__ = ["COMMAND_MODULES", "cli", "main"]


def main() -> None:
    """Console-script entry point: run the CLI, turning user errors into one clear line."""
    if sys.argv[1:] == ["--version"]:
        # the one answer that needs no command line parser: start-up time is all it costs
        print(VERSION)
        sys.exit(0)
    if not sys.warnoptions:
        import warnings

        # A library's DeprecationWarning or getpass's echo warning means nothing to a user;
        # `python -W default -m corral` (or $PYTHONWARNINGS) still shows them to a developer.
        warnings.simplefilter("ignore")
    from corral.cli.common import run_cli
    from corral.cli.group import cli

    run_cli(cli)


def __getattr__(name: str) -> Any:
    # ``corral.cli.cli``, the click group, is built when first asked for
    if name == "cli":
        from corral.cli.group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    cli: click.Group
