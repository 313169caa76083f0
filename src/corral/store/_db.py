"""The store's connection: opening the SQLite file, and short read and write transactions.

One ``sqlite3.Connection`` per :class:`Database` object, shared by its threads behind a
lock (``check_same_thread=False``); other processes open their own. Writes run in
``BEGIN IMMEDIATE`` so a read-modify-write never races another writer; WAL lets readers
carry on meanwhile, and the busy timeout makes writers queue instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from corral.store.errors import NotFound
from corral.store.schema import migrate

BUSY_TIMEOUT_MS = 5000


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,  # autocommit: every transaction below is explicit
        check_same_thread=False,
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Database:
    """An open store file; the data-access mixins build on its ``_read`` and ``_write``."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()
        self._pid = os.getpid()
        # Connections inherited across fork are never used or closed in the child:
        # closing one could checkpoint or unlink the WAL under the parent's feet.
        self._inherited: list[sqlite3.Connection] = []

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Self:
        """Open (creating if needed) the store at ``path`` and bring its schema up to date."""
        db_path = Path(path).expanduser()
        db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(db_path)
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return cls(db_path, conn)

    def close(self) -> None:
        """Close the connection; the object is unusable afterwards."""
        with self._lock:
            if self._pid == os.getpid():
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # forked (e.g. gunicorn --preload): reconnect
            self._inherited.append(self._conn)
            self._lock = threading.RLock()
            self._conn = _connect(self.path)
            self._pid = os.getpid()
        return self._conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs (a deferred transaction, never writing)."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        with self._lock:
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
