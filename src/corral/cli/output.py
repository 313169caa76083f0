"""How listing commands print: a rich table on a terminal, plain full-width columns elsewhere.

Off a terminal (``corral apps | cat``, a script, a CI log) rich would size a table to 80
columns and cut URLs short; there every value is printed whole instead, as padded columns
with no box and no colour, so ``grep``/``awk``/``cut`` see exactly what the server sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import click
from rich.table import Table
from rich.text import Text

from corral.cli.client import console

__all__ = ["Cell", "human_size", "print_fields", "print_table"]

#: A table cell: plain text, or rich Text carrying a style (dropped off a terminal).
Cell = str | Text

#: Spaces between plain columns, wide enough to tell columns apart by eye.
_GAP = "  "


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _rich(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


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
    table = Table(*headers, header_style="bold")
    if not box:
        table.box = None
    for row in rows:
        table.add_row(*(_rich(cell) for cell in row))
    console.print(table)


def print_fields(fields: Sequence[tuple[str, Cell]]) -> None:
    """Print ``label: value`` lines (apps:info, releases:info), values never cut short."""
    if not console.is_terminal:
        width = max((len(label) for label, _ in fields), default=0) + 1
        for label, value in fields:
            click.echo(f"{label + ':':<{width}} {_plain(value)}".rstrip())
        return
    table = Table.grid(padding=(0, 2))
    for label, value in fields:
        table.add_row(Text(label, style="bold"), _rich(value))
    console.print(table)


def human_size(size: float) -> str:
    """``3.2 MB`` for a number of bytes (decimal units, as people read them)."""
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
