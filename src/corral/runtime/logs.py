"""Reading an app's logs: every dyno's, the router's and the platform's lines, in time order.

Each writer owns one file in the app's log directory (``web.1.log``, ``router.log``,
``corral.log``), written and rotated to ``.1`` by :mod:`corral.logfiles`. Lines start
with an ISO 8601 UTC timestamp, so merging the files is a merge of sorted streams.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path

from corral.logfiles import LogLine, parse_line

__all__ = ["Tail", "follow", "matches", "recent"]


def _file_lines(path: Path) -> Iterator[LogLine]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for text in handle:
                line = parse_line(text.rstrip("\n"))
                if line is not None:
                    yield line
    except FileNotFoundError:
        return


def _streams(log_dir: Path) -> list[Iterator[LogLine]]:
    streams = []
    for current in sorted(log_dir.glob("*.log")):
        rotated = current.with_name(current.name + ".1")
        streams.append(_chain(_file_lines(rotated), _file_lines(current)))
    return streams


def _chain(*parts: Iterable[LogLine]) -> Iterator[LogLine]:
    for part in parts:
        yield from part


def matches(line: LogLine, source: str | None, dyno: str | None) -> bool:
    """Whether ``line`` passes the ``--source`` and ``--dyno`` filters."""
    if source and line.source != source:
        return False
    return not dyno or line.dyno == dyno or line.dyno.startswith(dyno + ".")


def recent(
    log_dir: Path, n: int = 100, *, source: str | None = None, dyno: str | None = None
) -> list[LogLine]:
    """The last ``n`` lines of the app that pass the filters, oldest first."""
    if not log_dir.is_dir():
        return []
    merged = heapq.merge(*_streams(log_dir))
    return list(deque((line for line in merged if matches(line, source, dyno)), maxlen=n))


class _Follower:
    """Tails one file from an offset, noticing when it is rotated away."""

    def __init__(self, path: Path, start_at_end: bool) -> None:
        self.path = path
        self.inode: int | None = None
        self.offset = 0
        self.pending = ""
        if start_at_end:
            try:
                stat = path.stat()
                self.inode, self.offset = stat.st_ino, stat.st_size
            except FileNotFoundError:
                pass

    def read(self) -> list[LogLine]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        lines: list[LogLine] = []
        if stat.st_ino != self.inode:
            # Rotated: finish the old file (now ``.1``) first, then start the new one.
            rotated = self.path.with_name(self.path.name + ".1")
            if self.inode is not None and _inode(rotated) == self.inode:
                lines += self._read_from(rotated)
            self.inode, self.offset, self.pending = stat.st_ino, 0, ""
        elif stat.st_size < self.offset:
            self.offset, self.pending = 0, ""  # truncated in place
        return lines + self._read_from(self.path)

    def _read_from(self, path: Path) -> list[LogLine]:
        with open(path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        *complete, self.pending = (self.pending + data.decode("utf-8", "replace")).split("\n")
        return [line for text in complete if (line := parse_line(text))]


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


class Tail:
    """New lines of an app's log directory, as far as each :meth:`poll` has read.

    It starts at the end of the files there now; files that appear later are read from
    their start, and a rotation is followed (the rest of the old file comes first).
    """

    def __init__(self, log_dir: Path, *, source: str | None = None, dyno: str | None = None):
        self.log_dir = log_dir
        self.source = source
        self.dyno = dyno
        self._followers: dict[Path, _Follower] = {
            path: _Follower(path, start_at_end=True) for path in log_dir.glob("*.log")
        }

    def poll(self) -> list[LogLine]:
        """The lines written since the last poll that pass the filters, in time order."""
        followers = self._followers
        for path in self.log_dir.glob("*.log") if self.log_dir.is_dir() else []:
            followers.setdefault(path, _Follower(path, start_at_end=False))
        return sorted(
            line
            for follower in followers.values()
            for line in follower.read()
            if matches(line, self.source, self.dyno)
        )


def follow(
    log_dir: Path,
    *,
    source: str | None = None,
    dyno: str | None = None,
    interval: float = 0.2,
    stop: float | None = None,
    heartbeat: bool = False,
) -> Generator[LogLine | None, None, None]:
    """Yield lines written after the call, until ``stop`` (a monotonic deadline) if given.

    With ``heartbeat`` it also yields None whenever a poll found nothing, so a caller can
    check other conditions between lines.
    """
    tail = Tail(log_dir, source=source, dyno=dyno)
    while stop is None or time.monotonic() < stop:
        batch = tail.poll()
        yield from batch
        if not batch:
            if heartbeat:
                yield None
            time.sleep(interval)
