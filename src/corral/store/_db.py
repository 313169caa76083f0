"""The store's connections: opening the SQLite file, and short read and write transactions.

Each :class:`Database` object has one connection for writes, shared by its threads behind
a lock (``check_same_thread=False``), and a small pool of connections for reads, so a
thread waiting for the write lock never holds up another thread's read: in WAL mode a
reader sees the last commit whatever a writer is doing. Other processes open their own.
Writes run in ``BEGIN IMMEDIATE`` so a read-modify-write never races another writer; the
busy timeout makes writers queue, and a writer still waiting when it ends gets
:class:`~corral.store.errors.StoreBusy` (the API answers 503, the supervisor retries).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from corral.store.errors import NotFound, StoreBusy
from corral.store.schema import migrate

#: Seconds a write waits for another process's write lock before giving up (StoreBusy).
BUSY_TIMEOUT = 5.0


def _connect(path: Path, busy_timeout: float, *, reader: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout,
        isolation_level=None,  # autocommit: every transaction below is explicit
        check_same_thread=False,
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    if reader:
        conn.execute("PRAGMA query_only = ON")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
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
        self._conn = conn
        self._lock = threading.RLock()
        #: Idle read connections; a thread takes one (or opens one) for each read.
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._pid = os.getpid()
        # Connections inherited across fork are never used or closed in the child:
        # closing one could checkpoint or unlink the WAL under the parent's feet.
        self._inherited: list[sqlite3.Connection] = []

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, busy_timeout: float = BUSY_TIMEOUT) -> Self:
        """Open (creating if needed) the store at ``path`` and bring its schema up to date.

        ``busy_timeout`` is how long a write waits for another's lock before StoreBusy.
        """
        db_path = Path(path).expanduser()
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with _busy_as_store_busy():
            conn = _connect(db_path, busy_timeout)
            try:
                migrate(conn)
            except BaseException:
                conn.close()
                raise
        return cls(db_path, conn, busy_timeout)

    def close(self) -> None:
        """Close the connections; the object is unusable afterwards."""
        with self._lock, self._readers_lock:
            if self._pid == os.getpid():
                self._conn.close()
                for reader in self._readers:
                    reader.close()
            self._readers = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # forked (e.g. gunicorn --preload): reconnect
            with self._readers_lock:
                self._inherited += [self._conn, *self._readers]
                self._readers = []
            self._lock = threading.RLock()
            self._conn = _connect(self.path, self.busy_timeout)
            self._pid = os.getpid()
        return self._conn

    def _take_reader(self) -> sqlite3.Connection:
        self._connection()  # reconnects after a fork first
        with self._readers_lock:
            if self._readers:
                return self._readers.pop()
        return _connect(self.path, self.busy_timeout, reader=True)

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._readers_lock:
            if self._pid == os.getpid():
                self._readers.append(conn)
                return
        conn.close()  # opened before a close() or by the parent: not kept

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs (a deferred transaction, never writing).

        Runs on a read connection of its own: a write waiting for the lock does not delay it.
        """
        conn = self._take_reader()
        try:
            with _busy_as_store_busy():
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")
        finally:
            self._give_back(conn)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        with self._lock, _busy_as_store_busy():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def require_app(conn: sqlite3.Connection, app: str) -> sqlite3.Row:
    """The row of ``app``, or :class:`NotFound` telling the user how to see their apps."""
    row = conn.execute("SELECT * FROM apps WHERE name = ?", (app,)).fetchone()
    if row is None:
        raise NotFound(f"No app named {app!r}; run `corral apps` to list your apps.")
    return row
