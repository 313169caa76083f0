"""How commands print: rich tables and colour on a terminal, plain whole text elsewhere.

Off a terminal (``corral apps | cat``, a script, a CI log) rich would size a table to 80
columns and cut URLs short; there every value is printed whole instead, as padded columns
with no box and no colour, so ``grep``/``awk``/``cut`` see exactly what the server sent.
rich itself is imported only when something is shown on a terminal: it costs more to
import than most commands take to run.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

import click

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "Cell",
    "Out",
    "Styled",
    "action",
    "console",
    "echo_json",
    "err_console",
    "human_size",
    "print_fields",
    "print_table",
]


class Styled(NamedTuple):
    """Text with a rich style (``"bold"``, ``"yellow"``), shown only on a terminal."""

    text: str
    style: str


#: A table cell or part of a line: plain text, or text with a style.
Cell = str | Styled

#: Spaces between plain columns, wide enough to tell columns apart by eye.
_GAP = "  "


def _plain(cell: Cell) -> str:
    return cell.text if isinstance(cell, Styled) else cell


class Out:
    """One output stream: text as given off a terminal, through rich (made on first use) on one.

    Nothing printed here is rich markup: styles are given as :class:`Styled` parts, so
    text from the server (``[web]``, ``:x:``) is shown as it is either way.
    """

    def __init__(self, *, stderr: bool = False) -> None:
        self.stderr = stderr
        self._rich: Console | None = None

    @property
    def file(self) -> TextIO:
        """The stream this prints to (looked up each time, as click's test runner swaps it)."""
        return sys.stderr if self.stderr else sys.stdout

    @property
    def is_terminal(self) -> bool:
        """Whether output goes to a terminal: rich's own rule, without importing rich."""
        compatible = os.environ.get("TTY_COMPATIBLE", "")
        if compatible in ("0", "1"):
            return compatible == "1"
        force = os.environ.get("FORCE_COLOR")
        if force is not None:
            return force != ""
        try:
            return self.file.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def rich(self) -> Console:
        """The rich console for this stream (for tables and styled text on a terminal)."""
        if self._rich is None:
            from rich.console import Console

            self._rich = Console(stderr=self.stderr, highlight=False, soft_wrap=True)
        return self._rich

    def print(self, *parts: Cell, style: str | None = None, end: str = "\n") -> None:
        """Print ``parts`` one after another (``style`` over all of them), then ``end``."""
        if not self.is_terminal:
            click.echo("".join(_plain(part) for part in parts) + end, file=self.file, nl=False)
            return
        from rich.text import Text

        self.rich.print(Text.assemble(*parts, style=style or ""), end=end)


#: Normal command output.
console = Out()
#: Diagnostics go to stderr so stdout stays clean for ``--json``.
err_console = Out(stderr=True)


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2))


@contextmanager
def action(text: str) -> Iterator[list[str]]:
    """Print ``text... `` then ``done`` (plus whatever the block appends) or ``!`` on failure."""
    suffix: list[str] = []
    console.print(f"{text}... ", end="")
    try:
        yield suffix
    except BaseException:
        console.print("!")
        raise
    console.print(", ".join(["done", *suffix]))


def _echo_columns(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        # the last column is never padded, so no line ends in spaces
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        click.echo(_GAP.join([*padded, row[-1]]).rstrip())


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Cell]], *, box: bool = True
) -> None:
    """Print ``rows`` under ``headers``: a rich table on a terminal, whole columns elsewhere."""
    rows = list(rows)
    if not console.is_terminal:
        _echo_columns([list(headers), *([_plain(cell) for cell in row] for row in rows)])
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(*headers, header_style="bold")
    if not box:
        table.box = None
    for row in rows:
        table.add_row(*(Text.assemble(cell) for cell in row))
    console.rich.print(table)


def print_fields(fields: Sequence[tuple[str, Cell]]) -> None:
    """Print ``label: value`` lines (apps:info, releases:info), values never cut short."""
    if not console.is_terminal:
        width = max((len(label) for label, _ in fields), default=0) + 1
        for label, value in fields:
            click.echo(f"{label + ':':<{width}} {_plain(value)}".rstrip())
        return
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    for label, value in fields:
        table.add_row(Text(label, style="bold"), Text.assemble(value))
    console.rich.print(table)


def human_size(size: float) -> str:
    """``3.2 MB`` for a number of bytes (decimal units, as people read them)."""
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
