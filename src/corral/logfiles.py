"""Writing log lines: the one line format, the one timestamp and the one rotating file.

Every writer of an app's logs (the dyno shim, the supervisor, the deploy pipeline, the
router) stores lines as ``2026-11-24T10:00:00.123456+00:00 source[dyno]: message`` in a
file of its own, rotated to ``.1`` by size; :mod:`corral.runtime.logs` reads them back.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "MAX_LOG_BYTES",
    "MAX_LOG_LINES",
    "LogFile",
    "LogLine",
    "append_line",
    "format_line",
    "parse_line",
    "timestamp",
]

#: Size at which a log file is rotated to ``.1`` (one old file is kept).
MAX_LOG_BYTES = 5 * 1024 * 1024
#: The most recent lines one logs request returns: the API's ``n`` and the CLI's ``-n``.
MAX_LOG_LINES = 10_000
#: Log files are the platform's only: an app's lines may hold what it would not show others.
_MODE = 0o600

_LINE = re.compile(r"^(\S+) (\w+)(?:\[([\w.-]+)\])?: (.*)$")


def timestamp() -> str:
    """Now, in the log's ISO 8601 form with microseconds and UTC offset."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def format_line(stamp: str, source: str, dyno: str, message: str) -> str:
    """One stored line, without its newline: ``stamp source[dyno]: message``.

    Lines without a dyno (the router's) have no ``[dyno]``.
    """
    if dyno:
        return f"{stamp} {source}[{dyno}]: {message}"
    return f"{stamp} {source}: {message}"


@dataclass(frozen=True, order=True)
class LogLine:
    """One log line: ``timestamp source[dyno]: message``."""

    timestamp: str
    source: str
    dyno: str
    message: str

    def __str__(self) -> str:
        return format_line(self.timestamp, self.source, self.dyno, self.message)


def parse_line(text: str) -> LogLine | None:
    """Parse one stored line; None for anything that is not one (a torn write, say)."""
    match = _LINE.match(text)
    if not match:
        return None
    stamp, source, dyno, message = match.groups()
    return LogLine(stamp, source, dyno or "", message)


class LogFile:
    """Appends lines to one log file, rotating it to ``.1`` once it reaches ``max_bytes``.

    :meth:`write` only holds a line; :meth:`flush` writes everything held in one system
    call, then rotates if the file is big enough. A writer that must not lose a line if it
    dies (the shim) flushes after every line; a busy one (the router) flushes on a timer.
    The file is opened with ``O_APPEND``, so writers in several processes may share it.
    """

    def __init__(self, path: Path, max_bytes: int = MAX_LOG_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._pending: list[str] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = self._open()

    def write(self, line: str) -> None:
        """Hold ``line`` (which must end with a newline) until the next :meth:`flush`."""
        self._pending.append(line)

    def flush(self) -> None:
        """Append the held lines to the file, rotating it if it reached ``max_bytes``."""
        if not self._pending:
            return
        data = memoryview("".join(self._pending).encode("utf-8", "replace"))
        self._pending.clear()
        while data:
            data = data[os.write(self._fd, data) :]
        if os.fstat(self._fd).st_size >= self.max_bytes:
            os.close(self._fd)
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            # Reopened at once: readers find the rotated lines next to a current file.
            self._fd = self._open()

    def close(self, *, flush: bool = True) -> None:
        """Close the file, after writing what is held unless ``flush`` is False."""
        try:
            if flush:
                self.flush()
        finally:
            self._pending.clear()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1  # a second close must not close a reused descriptor

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _MODE)


def append_line(log_dir: Path, name: str, line: LogLine, *, max_bytes: int = MAX_LOG_BYTES) -> None:
    """Append one line to ``log_dir/name.log``, rotating it to ``.1`` past ``max_bytes``."""
    log = LogFile(log_dir / f"{name}.log", max_bytes)
    log.write(f"{line}\n")
    log.close()
