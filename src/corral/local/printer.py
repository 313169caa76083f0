"""Printing process output: whole lines, prefixed with the time and the process's name.

Each name gets a colour from a fixed palette in the order names are added, so the same
Procfile gives the same colours every run. ``system`` lines are corral's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from rich.console import Console
from rich.text import Text

__all__ = ["PALETTE", "SYSTEM", "Printer"]

#: The name corral's own lines are printed under.
SYSTEM = "system"

#: Colours handed to process names in order; they repeat after the last one.
PALETTE = (
    "cyan",
    "yellow",
    "green",
    "magenta",
    "blue",
    "bright_cyan",
    "bright_yellow",
    "bright_green",
    "bright_magenta",
    "bright_blue",
)
_SYSTEM_STYLE = "bold"


class Printer:
    """Writes ``HH:MM:SS name | text`` lines to a rich console, one whole line per call."""

    def __init__(
        self,
        console: Console,
        names: Iterable[str] = (),
        *,
        time_format: str = "%H:%M:%S",
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.console = console
        self.time_format = time_format
        self._clock = clock
        self._styles: dict[str, str] = {SYSTEM: _SYSTEM_STYLE}
        self._width = len(SYSTEM)
        # The manager is the one printing owner; the lock only keeps a stray caller from
        # splitting a line in two.
        self._lock = threading.Lock()
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        """Give ``name`` the next colour and widen the name column to fit it."""
        if name not in self._styles:
            self._styles[name] = PALETTE[(len(self._styles) - 1) % len(PALETTE)]
        self._width = max(self._width, len(name))

    def style(self, name: str) -> str:
        """The colour ``name``'s lines are prefixed with (added on first use)."""
        self.add(name)
        return self._styles[name]

    def write(self, name: str, text: str) -> None:
        """Print one line of ``name``'s output; ANSI colours in ``text`` are kept."""
        style = self.style(name)
        stamp = self._clock().strftime(self.time_format)
        prefix = f"{stamp} {name.ljust(self._width)} | "
        line = Text.assemble((prefix, style), Text.from_ansi(text.rstrip("\r\n")))
        with self._lock:
            # soft_wrap: never wrap or crop a line; the terminal does what it does.
            self.console.print(line, soft_wrap=True, highlight=False)

    def system(self, text: str) -> None:
        """Print one of corral's own lines (``system | web.1 started with pid 42``)."""
        self.write(SYSTEM, text)
