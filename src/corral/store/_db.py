"""The store's connections: opening the SQLite file, and short read and write transactions.

Each :class:`Database` object keeps a small pool of connections shared by its threads
(``check_same_thread=False``); a thread takes one for each transaction, so a thread
waiting for the write lock never holds up another thread's read (in WAL mode a reader
sees the last commit whatever a writer does) nor the timeout of another's write. Other
processes open their own. Writes run in ``BEGIN IMMEDIATE`` so a read-modify-write never
races another writer; the busy timeout makes writers queue, and a writer still waiting
when it ends gets :class:`~corral.store.errors.StoreBusy` (the API answers 503, the
supervisor retries later).
"""

from __future__ import annotations

import os
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Self

from corral.store.errors import NotFound, StoreBusy
from corral.store.schema import migrate

#: Seconds a write waits for another connection's write lock before giving up (StoreBusy).
BUSY_TIMEOUT = 5.0


def _connect(path: Path, busy_timeout: float, *, first: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout,
        isolation_level=None,  # autocommit: every transaction below is explicit
        check_same_thread=False,
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    if first:  # the mode is the file's: the connections opened after it share it
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _open_first(path: Path, busy_timeout: float) -> sqlite3.Connection:
    conn = _connect(path, busy_timeout, first=True)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite saying another connection holds the lock it needs."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


@contextmanager
def _busy_as_store_busy() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise StoreBusy() from exc
        raise


class Database:
    """An open store file; the data-access mixins build on its ``_read`` and ``_write``."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        #: Idle connections; a transaction takes one (or opens one) and gives it back.
        self._idle = [conn]
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        # Connections inherited across fork are never used or closed in the child:
        # closing one could checkpoint or unlink the WAL under the parent's feet.
        self._inherited: list[sqlite3.Connection] = []
        #: A connection of its own for :meth:`data_version`, which never runs a transaction.
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()
        self._watch_pid = 0
        #: A datagram socket told of every commit (the supervisor's: see :meth:`wake_on_commit`).
        self._wake_path: str | None = None
        self._wake_socket: socket.socket | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, busy_timeout: float = BUSY_TIMEOUT) -> Self:
        """Open (creating if needed) the store at ``path`` and bring its schema up to date.

        ``busy_timeout`` is how long a write waits for another's lock before StoreBusy.
        """
        db_path = Path(path).expanduser()
        db_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                with _busy_as_store_busy():
                    return cls(db_path, _open_first(db_path, busy_timeout), busy_timeout)
            except StoreBusy:
                # Processes opening a new file at once can deadlock on its first locks
                # (each holds a shared lock and wants the exclusive one to make it WAL):
                # SQLite then says "locked" at once, without waiting, so the open is retried.
                if time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(0.005, 0.05))

    def close(self) -> None:
        """Close the connections; the object is unusable afterwards."""
        with self._lock:
            self._closed = True
            if self._pid == os.getpid():
                for conn in self._idle:
                    conn.close()
            self._idle = []
        with self._watch_lock:
            if self._watch is not None and self._pid == os.getpid():
                self._watch.close()
            self._watch = None
        if self._wake_socket is not None:
            self._wake_socket.close()
            self._wake_socket = None

    def wake_on_commit(self, path: str | os.PathLike[str]) -> None:
        """After each write, send a byte to the datagram socket at ``path`` if one listens
        there (the supervisor, which then looks at the store at once rather than at its next
        tick); a missing or busy listener costs one failed send and is never an error."""
        # made here, not at the first commit: the threads that commit share it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        self._wake_path, self._wake_socket = os.fspath(path), sock

    def _wake(self) -> None:
        if self._wake_path is None or self._wake_socket is None:
            return
        with suppress(OSError):  # nobody listens, or its queue is full: it will look anyway
            self._wake_socket.sendto(b".", self._wake_path)

    def data_version(self) -> int:
        """A number that changes whenever anyone (this process too) commits a change.

        SQLite's ``PRAGMA data_version`` on a connection that never writes: a read of the
        shared WAL index, no transaction, so watching it costs microseconds. Compare two
        results only from the same process.
        """
        with self._watch_lock, _busy_as_store_busy():
            if self._watch is None or self._watch_pid != os.getpid():
                self._watch = _connect(self.path, self.busy_timeout)
                self._watch_pid = os.getpid()
            return int(self._watch.execute("PRAGMA data_version").fetchone()[0])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection of this process for one transaction, given back afterwards."""
        with self._lock:
            if self._pid != os.getpid():  # forked (e.g. gunicorn --preload): reconnect
                self._inherited += self._idle
                self._idle = []
                self._pid = os.getpid()
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            with _busy_as_store_busy():
                conn = _connect(self.path, self.busy_timeout)
        try:
            yield conn
        finally:
            with self._lock:
                if self._closed or self._pid != os.getpid():
                    conn.close()
                else:
                    self._idle.append(conn)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs (a deferred transaction, never writing)."""
        with self._connection() as conn, _busy_as_store_busy():
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        with self._connection() as conn, _busy_as_store_busy():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        self._wake()


def require_app(conn: sqlite3.Connection, app: str) -> sqlite3.Row:
    """The row of ``app``, or :class:`NotFound` telling the user how to see their apps."""
    row = conn.execute("SELECT * FROM apps WHERE name = ?", (app,)).fetchone()
    if row is None:
        raise NotFound(f"No app named {app!r}; run `corral apps` to list your apps.")
    return row
