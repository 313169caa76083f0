"""The platform's side of the shim zygote (:mod:`corral.runtime.zygote`): ask it for a shim,
keep one running per home, stop it at a clean shutdown.

A shim the zygote forked is not our child, so it is watched through a pidfd, opened while
the zygote still holds the pid for us: the pidfd becomes readable when the shim exits, and
never names another process, so a look costs one system call where ``psutil`` reads /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Mapping
from pathlib import Path

import psutil

from corral.runtime import zygote

__all__ = ["Forked", "ZygoteKeeper", "fork_shim", "socket_path"]

#: The zygote, run as a file like the shim (see its docstring).
ZYGOTE = str(Path(zygote.__file__))
#: Seconds to wait for the zygote's answer: longer than it waits for a shim to start.
_ANSWER_TIMEOUT = 2 * zygote.CLIENT_TIMEOUT
#: Seconds between attempts to start a zygote that would not start.
_RETRY_AFTER = 30.0


def socket_path(run_dir: Path) -> Path:
    """Where a home's zygote listens."""
    return run_dir / zygote.SOCKET_NAME


class Forked:
    """A shim the zygote forked, as much of a ``Popen`` as the supervisor uses: ``poll``
    and ``wait`` say whether it exited (its status is in its status file, not here)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)
        self._close = weakref.finalize(self, os.close, self._pidfd)

    def poll(self) -> int | None:
        """0 once the shim has exited, else None."""
        return self.wait(0) if self.returncode is None else self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the shim to exit (up to ``timeout`` seconds); 0 once it has."""
        if self.returncode is None:
            poller = select.poll()  # not select(): a pidfd may be numbered 1024 or more
            poller.register(self._pidfd, select.POLLIN)
            if poller.poll(None if timeout is None else timeout * 1000):
                self.returncode = 0
                self._close()
        return self.returncode


def fork_shim(
    run_dir: Path, argv: list[str], cwd: Path, env: Mapping[str, str]
) -> tuple[Forked, float] | None:
    """A shim forked by the home's zygote with ``argv`` (the shim's arguments), and its
    start time; None when no zygote answers or the shim could not be tracked (the zygote
    has killed it then; the caller execs a shim instead)."""
    where = zygote.address(str(socket_path(run_dir)))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(_ANSWER_TIMEOUT)
            try:
                conn.connect(where)
            except OSError:
                return None
            request = {"argv": argv, "cwd": str(cwd), "env": dict(env)}
            try:
                conn.sendall(json.dumps(request).encode() + b"\n")
            except OSError:
                return None
            answer = _line(conn)
            if answer.startswith("error no such directory"):
                raise FileNotFoundError(f"no such directory: {cwd}")
            if not answer.isdigit():
                return None  # the zygote went away, or its shim never started
            return _track(conn, int(answer))
    finally:
        zygote.close_address(where)


def _track(conn: socket.socket, pid: int) -> tuple[Forked, float] | None:
    """Look the shim ``pid`` up while the zygote holds it, then say so (``k``); if that
    fails, hang up and wait until the zygote has killed it."""
    try:
        forked = Forked(pid)
        started = psutil.Process(pid).create_time()
        conn.sendall(b"k")
        return forked, started
    except (OSError, psutil.Error):
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)  # the zygote kills it, then closes
            conn.recv(1)
        return None


def _line(conn: socket.socket) -> str:
    data = b""
    try:
        while not data.endswith(b"\n") and len(data) < 100:
            chunk = conn.recv(100)
            if not chunk:
                break
            data += chunk
    except OSError:
        return ""
    return data.decode("ascii", "replace").strip()


class ZygoteKeeper:
    """Keeps one zygote running for a home: started detached when none answers, restarted
    after it died (with a pause when it will not start), stopped at a clean shutdown.

    Nothing here waits on the zygote unless asked to: a start that finds none running
    starts one and goes on with an exec'd shim, so the supervisor's loop never blocks
    on it; :meth:`stop` blocks, and the supervisor runs it in a thread.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._process: subprocess.Popen | None = None
        self._answered = False
        self._failed_at = -_RETRY_AFTER

    def ensure(self, wait: float = 0.0) -> bool:
        """Whether a zygote answers, starting one if none does (unless one failed to start
        in the last ``_RETRY_AFTER`` seconds) and waiting up to ``wait`` seconds for it."""
        if self._process is not None and self._process.poll() is not None:
            if not self._answered:  # it died before it ever answered: do not insist
                self._failed_at = time.monotonic()
            self._process = None  # reaped: it died, or left when idle
        if self._answers():
            return True
        if self._process is None and time.monotonic() - self._failed_at >= _RETRY_AFTER:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._answered = False
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", ZYGOTE, str(socket_path(self.run_dir))],
                cwd="/",
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a kill -9 of the platform's group leaves it, as shims
                close_fds=True,
            )
        deadline = time.monotonic() + wait
        while self._process is not None and self._process.poll() is None:
            if self._answers():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)  # bounded by ``wait``: a python -S start is ~20 ms
        return False

    def _answers(self) -> bool:
        where = zygote.address(str(socket_path(self.run_dir)))
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.setblocking(False)  # a zygote whose backlog is full does not answer
                conn.connect(where)
            self._answered = True
            return True
        except OSError:
            return False
        finally:
            zygote.close_address(where)

    def stop(self) -> None:
        """Ask the home's zygote to leave and wait until it has (its shims run on; it forks
        no more); blocking, for up to ``2 * _ANSWER_TIMEOUT`` seconds."""
        where = zygote.address(str(socket_path(self.run_dir)))
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(_ANSWER_TIMEOUT)
                conn.connect(where)
                conn.sendall(b'{"stop": true}\n')
                if _line(conn) == "stopping":
                    conn.recv(1)  # EOF once the zygote has exited
        except OSError:
            pass  # none runs
        finally:
            zygote.close_address(where)
        # taken first: an ensure() on the loop meanwhile keeps the zygote it starts
        process, self._process = self._process, None
        if process is not None:
            try:
                process.wait(timeout=_ANSWER_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
