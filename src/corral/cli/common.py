"""What every CLI command shares: printing user errors as one line and exiting non-zero."""

from __future__ import annotations

import sys

import click

from corral.cli.output import Styled, err_console
from corral.errors import UserError

__all__ = ["err_console", "fail", "run_cli"]


def fail(error: UserError) -> None:
    """Print ``error`` (and any detail lines) to stderr."""
    for line in error.details:
        err_console.print(f"       {line}", style="dim")
    err_console.print(Styled("error: ", "bold red"), error.message)


def run_cli(group: click.Group) -> None:
    """Run ``group``; a :class:`UserError` becomes one line on stderr and its exit code."""
    try:
        code = group.main(standalone_mode=False)
    except UserError as error:
        fail(error)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        err_console.print("Aborted.")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    if isinstance(code, int):
        sys.exit(code)
