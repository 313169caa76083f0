"""Which client connections the router takes: a cap per client address, and one in all.

One address may hold :attr:`Limits.client_connections` connections at once; the next is
answered at once with a short 503 and closed, before any task or parser exists for it. In
all, the router takes as many connections as its file limit leaves room for (each may
need a second descriptor, to a dyno). Near that number it closes the connections that
have waited longest for a next request (idle keep-alives cost a client nothing to reopen);
only when none is idle does it refuse new ones. Each cause is logged, named, at most once
per :data:`LOG_INTERVAL` seconds, with how many it concerned since the last line.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import Protocol

from corral.router.pages import logfmt_value

__all__ = ["LOG_INTERVAL", "Admission", "connection_budget", "raise_file_limit"]

#: Seconds between two log lines about the same cause (and client address).
LOG_INTERVAL = 10.0
#: Client addresses whose last log line is remembered; past it the memory starts over.
_LOGGED_ADDRESSES = 1024


class Closable(Protocol):
    """A connection the router may close to free its descriptor."""

    def close(self) -> None: ...


def raise_file_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Linux refuses more than fs.nr_open (2**20 by default), so "unlimited" is capped there.
    target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # not allowed here: carry on with the soft limit
            return soft
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_budget(file_limit: int) -> int:
    """How many client connections fit in ``file_limit`` descriptors, each with a dyno's."""
    reserve = min(256, file_limit // 4)  # log files, listening sockets, body files, the pool
    return max(8, (file_limit - reserve) // 2)


class Admission:
    """Counts client connections per address and in all; decides on each new one.

    It is also the register of idle keep-alive connections (``add``/``discard``, as a
    :class:`~corral.router.client.IdleClients`), oldest first, from which it sheds.
    """

    def __init__(
        self,
        *,
        per_client: int,
        most: int,
        file_limit: int,
        log: Callable[[str, str], None],
        clock: Callable[[], float],
        shed_pool: Callable[[], int] = lambda: 0,
    ) -> None:
        #: Connections one address may hold (0: any number).
        self.per_client = per_client
        #: Connections in all.
        self.most = most
        self.file_limit = file_limit
        #: Past this many, the idle connections are shed, oldest first.
        self.shed_at = most - max(1, most // 8)
        self.total = 0
        self._log = log
        self._clock = clock
        self._shed_pool = shed_pool
        self._by_address: dict[str, int] = {}
        # Insertion-ordered: the first is the one idle longest.
        self._idle: dict[Closable, None] = {}
        # Shed, but not yet gone: their descriptors count as free.
        self._closing: set[Closable] = set()
        # cause -> (when last logged, how many since)
        self._logged: dict[str, tuple[float, int]] = {}

    # -- the register of idle keep-alive connections

    def add(self, conn: Closable) -> None:
        """``conn`` waits for its next request."""
        self._idle[conn] = None

    def discard(self, conn: Closable) -> None:
        """``conn`` is busy again (or gone)."""
        self._idle.pop(conn, None)

    # -- connections coming and going

    def admit(self, address: str) -> str:
        """Count a new connection from ``address`` in; or say why not (``""``: admitted)."""
        held = self._by_address.get(address, 0)
        if self.per_client and held >= self.per_client:
            reason = (
                f"this client address holds {held} connections, the router's cap per client"
                " (corral server --client-connections); the new one was refused"
            )
            self._note(f"client {address}", f"code=H22 {_LIMIT} fwd={_quoted(address)}", reason)
            return "client"
        if self.total - len(self._closing) >= self.shed_at:
            self._shed_idle(self.total - len(self._closing) - self.shed_at + 1)
        if self.total - len(self._closing) >= self.most:
            reason = (
                f"the router holds {self.total} connections, all its file limit"
                f" (nofile={self.file_limit}) leaves room for, and none is idle;"
                " the new one was refused"
            )
            self._note("total", f"code=H22 {_LIMIT}", reason)
            return "total"
        self._by_address[address] = held + 1
        self.total += 1
        return ""

    def leave(self, address: str, conn: Closable) -> None:
        """An admitted connection from ``address`` closed."""
        self.total -= 1
        self._idle.pop(conn, None)
        self._closing.discard(conn)
        held = self._by_address.pop(address, 1) - 1
        if held > 0:
            self._by_address[address] = held

    def out_of_files(self) -> None:
        """Opening a socket failed for want of descriptors: free some, and say so."""
        shed = self._shed_idle(max(1, len(self._idle) // 4), log=False) + self._shed_pool()
        reason = (
            f"the router is out of file descriptors (nofile={self.file_limit}) with"
            f" {self.total} client connections open; {shed} idle connections were closed"
        )
        self._note("files", 'code=H99 desc="Platform error: out of file descriptors"', reason)

    def _shed_idle(self, count: int, *, log: bool = True) -> int:
        # A batch, so that a router at its limit does not shed at every new connection.
        count = min(len(self._idle), max(count, self.most // 32))
        for _ in range(count):
            conn = next(iter(self._idle))
            del self._idle[conn]
            self._closing.add(conn)
            conn.close()
        if count and log:
            reason = (
                f"{self.total} connections, near the router's file limit"
                f" (nofile={self.file_limit}): those idle longest were closed"
            )
            self._note("shed", 'desc="Idle connections shed"', reason, level="warning", n=count)
        return count

    def _note(self, cause: str, what: str, reason: str, level: str = "error", n: int = 1) -> None:
        """Log ``what`` for ``cause`` unless it was logged within the interval (then count it)."""
        now = self._clock()
        last, since = self._logged.get(cause, (float("-inf"), 0))
        since += n
        if now - last < LOG_INTERVAL:
            self._logged[cause] = (last, since)
            return
        if len(self._logged) >= _LOGGED_ADDRESSES:
            self._logged.clear()
        self._logged[cause] = (now, 0)
        self._log("", f"at={level} {what} count={since} reason={_quoted(reason)}")


_LIMIT = 'desc="Connection limit reached"'


def _quoted(text: str) -> str:
    return logfmt_value(text, quoted=True)
