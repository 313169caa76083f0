"""The printer: whole lines, prefixed with time and name, a stable colour per name."""

from __future__ import annotations

import io
import re
from datetime import datetime

from rich.console import Console

from corral.local.printer import PALETTE, Printer

NOON = datetime(2026, 11, 24, 12, 0, 5)


def _printer(names: tuple[str, ...] = (), *, terminal: bool = False) -> tuple[Printer, io.StringIO]:
    stream = io.StringIO()
    console = Console(
        file=stream,
        force_terminal=terminal,
        color_system="standard" if terminal else None,
        width=40,
    )
    return Printer(console, names, clock=lambda: NOON), stream


def test_lines_are_prefixed_with_time_and_name_padded_to_the_longest_name() -> None:
    printer, stream = _printer(("web.1", "worker.1"))
    printer.write("web.1", "Listening at: http://127.0.0.1:5000")
    printer.system("web.1 started with pid 42")
    assert stream.getvalue().splitlines() == [
        "12:00:05 web.1    | Listening at: http://127.0.0.1:5000",
        "12:00:05 system   | web.1 started with pid 42",
    ]


def test_system_sets_the_minimum_width() -> None:
    printer, stream = _printer(("web.1",))
    printer.write("web.1", "hi")
    assert stream.getvalue() == "12:00:05 web.1  | hi\n"


def test_long_lines_are_never_wrapped_or_cropped() -> None:
    printer, stream = _printer(("web.1",))
    long = "x" * 500
    printer.write("web.1", long)
    assert stream.getvalue() == f"12:00:05 web.1  | {long}\n"


def test_markup_in_output_is_printed_literally() -> None:
    printer, stream = _printer(("web.1",))
    printer.write("web.1", "[bold]not bold[/] :smile: [red]")
    assert stream.getvalue() == "12:00:05 web.1  | [bold]not bold[/] :smile: [red]\n"


def test_ansi_colours_from_the_app_are_dropped_when_not_a_terminal() -> None:
    printer, stream = _printer(("web.1",))
    printer.write("web.1", "\x1b[31mred\x1b[0m plain\r\n")
    assert stream.getvalue() == "12:00:05 web.1  | red plain\n"


def test_each_name_keeps_its_colour_and_names_get_different_colours() -> None:
    printer, stream = _printer(("web.1", "worker.1"), terminal=True)
    printer.write("web.1", "a")
    printer.write("worker.1", "b")
    printer.write("web.1", "c")
    lines = stream.getvalue().splitlines()
    colour = [re.match(r"\x1b\[([0-9;]+)m", line).group(1) for line in lines]  # type: ignore[union-attr]
    assert colour[0] == colour[2] != colour[1]
    assert printer.style("web.1") == PALETTE[0]
    assert printer.style("worker.1") == PALETTE[1]


def test_colours_follow_the_order_names_are_added() -> None:
    first, _ = _printer(("web.1", "web.2", "worker.1"))
    second, _ = _printer(("web.1", "web.2", "worker.1"))
    assert [first.style(n) for n in ("web.1", "web.2", "worker.1")] == [
        second.style(n) for n in ("web.1", "web.2", "worker.1")
    ]


def test_colours_repeat_after_the_palette_runs_out() -> None:
    names = tuple(f"p{i}.1" for i in range(len(PALETTE) + 1))
    printer, _ = _printer(names)
    assert printer.style(names[-1]) == printer.style(names[0])


def test_unknown_names_are_added_on_first_use() -> None:
    printer, stream = _printer()
    printer.write("release.1", "migrating")
    assert stream.getvalue() == "12:00:05 release.1 | migrating\n"
