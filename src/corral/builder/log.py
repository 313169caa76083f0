"""Heroku-style build output: ``-----> Step`` lines, indented detail, the time each took."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

Emit = Callable[[str], None]
INDENT = " " * 7


@dataclass
class BuildLog:
    """Prints build steps through ``emit`` and keeps their timings for the summary.

    A step with no detail lines prints one header line with its time when it ends; a
    step with detail prints its header before the first detail line and a closing
    ``done in`` line, so long steps stream.
    """

    emit: Emit
    steps: list[dict[str, object]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _title: str | None = None
    _header_shown: bool = False

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Time one step; change its title with :meth:`retitle` while it runs."""
        self._title, self._header_shown = title, False
        started = time.monotonic()
        outcome = "done"
        try:
            yield
        except BaseException:
            outcome = "failed"
            raise
        finally:
            seconds = time.monotonic() - started
            title = self._title
            if self._header_shown:
                self.emit(f"{INDENT}{outcome} in {seconds:.2f}s")
            elif outcome == "done":
                self.emit(f"-----> {title} ({seconds:.2f}s)")
            else:
                self.emit(f"-----> {title} failed ({seconds:.2f}s)")
            self.steps.append({"step": title, "seconds": round(seconds, 3), "outcome": outcome})
            self._title = None

    def retitle(self, title: str) -> None:
        """Rename the running step (e.g. once it is known whether a cache was used)."""
        self._title = title

    def detail(self, line: str) -> None:
        """One indented line under the running step."""
        if self._title is not None and not self._header_shown:
            self.emit(f"-----> {self._title}")
            self._header_shown = True
        self.emit(f"{INDENT}{line}")

    def warn(self, message: str) -> None:
        """A warning, shown at once and repeated in the summary."""
        self.warnings.append(message)
        self.detail(f"warning: {message}")
