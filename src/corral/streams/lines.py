"""What a log stream sends, shared by the streams service and the API's own (fallback) views.

The count of lines a tail starts with, the dashboard's server-sent events and the lines a
reconnecting event stream catches up on have one home here, so both servers send the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from corral.errors import UserError
from corral.logfiles import MAX_LOG_LINES, LogLine
from corral.numbers import whole_number
from corral.runtime.logs import recent
from corral.store import Store

__all__ = [
    "CATCH_UP_LINES",
    "HEARTBEAT",
    "RECHECK",
    "REVOKED",
    "SSE_HELLO",
    "Recheck",
    "catch_up",
    "lines_wanted",
    "session_alive",
    "sse_event",
    "wants_tail",
]

#: How many lines a reconnecting log stream may catch up on, or a fresh one start with.
CATCH_UP_LINES = 1000
#: Seconds between SSE comments that keep an idle log stream open.
HEARTBEAT = 15.0
#: Seconds between checks, while a stream is open, that its token still exists.
RECHECK = 3.0
#: The last line of a tail whose token was revoked while it ran.
REVOKED = "corral: this stream's token was revoked; sign in again with `corral login`."
#: The first event of a dashboard stream: the browser's reconnect delay, and a comment.
SSE_HELLO = "retry: 3000\n: connected\n\n"


def lines_wanted(raw: str | None) -> int:
    """The ``n`` query parameter of ``logs``: a whole number of lines, else a 400 saying so."""
    raw = "100" if raw is None else raw
    n = whole_number(raw)
    if n is None or not 1 <= n <= MAX_LOG_LINES:
        raise UserError(
            f"n must be a whole number of lines from 1 to {MAX_LOG_LINES}, not {raw!r}."
        )
    return n


#: The spellings of the ``tail`` flag: on, and off.
TAIL_ON = ("1", "true", "yes")
TAIL_OFF = ("0", "false", "no")


def wants_tail(raw: str | None) -> bool:
    """Whether the ``tail`` query parameter asks for a live tail; a 400 for other words."""
    word = "0" if raw is None else raw.lower()
    if word not in TAIL_ON + TAIL_OFF:
        raise UserError(f"tail must be 1 (stream new lines) or 0, not {raw!r}.")
    return word in TAIL_ON


def session_alive(store: Store, token_id: str) -> bool:
    """Whether the token a dashboard session signed in with still exists."""
    return any(token.id == token_id for token in store.tokens())


def sse_event(line: LogLine) -> str:
    """One log line as a server-sent event whose id is its timestamp."""
    # A carriage return would end the SSE field early.
    data = str(line).replace("\r", "")
    return f"id: {line.timestamp}\ndata: {data}\n\n"


def catch_up(
    log_dir: Path, since: str, backlog: str, *, source: str | None, dyno: str | None
) -> list[LogLine]:
    """The lines an event stream starts with: those after ``since`` (a reconnect), else the
    last ``backlog`` (filters changed), else none (the page shows the recent lines)."""
    if since:
        lines = recent(log_dir, CATCH_UP_LINES, source=source, dyno=dyno)
        return [line for line in lines if line.timestamp > since]
    size = min(whole_number(backlog) or 0, CATCH_UP_LINES)
    return recent(log_dir, size, source=source, dyno=dyno) if size else []


class Recheck:
    """Whether a stream may go on: ``allowed()`` asked again at most every ``every`` seconds."""

    def __init__(self, allowed: Callable[[], bool], every: float = RECHECK) -> None:
        self.allowed = allowed
        self.every = every
        self._asked = time.monotonic()
        self._answer = True

    def __call__(self) -> bool:
        """The last answer, refreshed if it is older than ``every`` seconds."""
        now = time.monotonic()
        if self._answer and now - self._asked >= self.every:
            self._asked = now
            self._answer = self.allowed()
        return self._answer
