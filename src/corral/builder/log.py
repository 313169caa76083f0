"""Heroku-style build output: ``-----> Step`` lines, indented detail, the time each took.

Builds see the app's config vars, which are secrets: what the tools print is shown with
each config value replaced by its name (``$UV_INDEX_URL``), so no value reaches a log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

Emit = Callable[[str], None]
INDENT = " " * 7
#: Values shorter than this are left alone: hiding every "1" or "true" would garble output.
MIN_HIDDEN = 8
_URL_CREDENTIALS = re.compile(r"://([^/@\s:]+)(?::([^/@\s]*))?@")


def hidden_values(config: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """What to hide from build output, as (secret, shown instead), longest secret first.

    Each value, and the password (or token-as-user name) of any URL in it, since tools
    print index URLs with their own paths appended or their passwords masked.
    """
    hidden: dict[str, str] = {}
    for key, value in config.items():
        for match in _URL_CREDENTIALS.finditer(value):
            user, password = match.groups()
            secret = password if password else user
            if len(secret) >= MIN_HIDDEN:
                hidden.setdefault(secret, "****")
        if len(value) >= MIN_HIDDEN:
            hidden[value] = f"${key}"
    return tuple(sorted(hidden.items(), key=lambda pair: -len(pair[0])))


def hide(line: str, hidden: tuple[tuple[str, str], ...]) -> str:
    """``line`` with every secret of ``hidden`` replaced."""
    for secret, shown in hidden:
        if secret in line:
            line = line.replace(secret, shown)
    return line


@dataclass
class BuildLog:
    """Prints build steps through ``emit`` and keeps their timings for the summary.

    A step with no detail lines prints one header line with its time when it ends; a
    step with detail prints its header before the first detail line and a closing
    ``done in`` line, so long steps stream. Detail lines go through :func:`hide`.
    """

    emit: Emit
    hidden: tuple[tuple[str, str], ...] = ()
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
        self.emit(f"{INDENT}{hide(line, self.hidden)}")

    def warn(self, message: str) -> None:
        """A warning, shown at once and repeated in the summary."""
        self.warnings.append(message)
        self.detail(f"warning: {message}")
