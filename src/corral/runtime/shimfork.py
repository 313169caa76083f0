"""The platform's side of the shim zygote (:mod:`corral.runtime.zygote`): ask it for a shim,
keep one running per home, stop it at a clean shutdown.

A shim the zygote forked is not our child, so it is watched through a pidfd, opened while
the zygote still holds the pid for us: the pidfd becomes readable when the shim exits, and
never names another process, so a look costs one system call where ``psutil`` reads /proc.
"""

from __future__ import annotations

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
#: Seconds a new zygote has to open its socket before dynos start under exec'd shims.
_READY_TIMEOUT = 2.0
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
            ready, _, _ = select.select([self._pidfd], [], [], timeout)
            if ready:
                self.returncode = 0
                self._close()
        return self.returncode


def fork_shim(
    run_dir: Path, argv: list[str], cwd: Path, env: Mapping[str, str]
) -> tuple[Forked, float] | None:
    """A shim forked by the home's zygote with ``argv`` (the shim's arguments), and its
    start time; None when no zygote answers (the caller execs a shim instead)."""
    where = zygote.address(str(socket_path(run_dir)))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5)
            try:
                conn.connect(where)
            except OSError:
                return None
            request = {"argv": argv, "cwd": str(cwd), "env": dict(env)}
            conn.sendall(json.dumps(request).encode())
            conn.shutdown(socket.SHUT_WR)
            answer = _line(conn)
            if answer.startswith("error"):
                raise FileNotFoundError(f"no such directory: {cwd}")
            if not answer.isdigit():
                return None  # the zygote went away before it forked
            pid = int(answer)
            # before we hang up, the zygote reaps nothing: the pid is still the shim's
            forked = Forked(pid)
            return forked, psutil.Process(pid).create_time()
    finally:
        zygote.close_address(where)


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
    after it died (with a pause when it will not start), stopped at a clean shutdown."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._process: subprocess.Popen | None = None
        self._failed_at = -_RETRY_AFTER

    def ensure(self) -> bool:
        """Whether a zygote answers, starting one (and waiting for it, briefly) if not."""
        if self._answers():
            return True
        if self._process is not None and self._process.poll() is None:
            return False  # ours, still opening its socket
        if time.monotonic() - self._failed_at < _RETRY_AFTER:
            return False
        self.run_dir.mkdir(parents=True, exist_ok=True)
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
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline and self._process.poll() is None:
            if self._answers():
                return True
            time.sleep(0.005)  # bounded: a python -S start is ~20 ms
        self._failed_at = time.monotonic()
        return False

    def _answers(self) -> bool:
        where = zygote.address(str(socket_path(self.run_dir)))
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(where)
            return True
        except OSError:
            return False
        finally:
            zygote.close_address(where)

    def stop(self) -> None:
        """Ask the home's zygote to leave (its shims run on; it forks no more)."""
        where = zygote.address(str(socket_path(self.run_dir)))
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(5)
                conn.connect(where)
                conn.sendall(b'{"stop": true}')
                conn.shutdown(socket.SHUT_WR)
                if _line(conn) == "stopping":
                    conn.recv(1)  # EOF once the zygote has exited
        except OSError:
            pass  # none runs
        finally:
            zygote.close_address(where)
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
