"""One child process: started in its own session, its output read as whole lines.

A reader thread turns the child's merged stdout/stderr into :class:`Line` events on the
owner's queue and ends with :class:`OutputClosed`; the owner decides what to print and
when the child counts as exited. Signals go to the child's whole process group, so
whatever it started goes with it.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

__all__ = [
    "Line",
    "OutputClosed",
    "Process",
    "ProcessSpec",
    "describe_exit",
    "shell",
]

#: Longest piece read as one line; a longer line is printed in pieces of this size.
MAX_LINE = 64 * 1024


def shell(command: str) -> tuple[str, ...]:
    """The arguments that run a Procfile ``command`` the way Heroku and foreman do."""
    return ("/bin/sh", "-c", command)


@dataclass(frozen=True)
class ProcessSpec:
    """What to run: a name (``web.1``), its arguments, environment and working directory."""

    name: str
    args: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path


@dataclass(frozen=True)
class Line:
    """One line of a process's output, without its line ending."""

    name: str
    text: str


@dataclass(frozen=True)
class OutputClosed:
    """A process's output reached its end; every :class:`Line` of it came before this."""

    name: str


class Process:
    """A child started from a :class:`ProcessSpec`, leading its own process group."""

    def __init__(self, spec: ProcessSpec, events: queue.SimpleQueue[object]) -> None:
        self.spec = spec
        self._events = events
        self._popen: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def name(self) -> str:
        """The process's name, e.g. ``web.1``."""
        return self.spec.name

    @property
    def pid(self) -> int | None:
        """The child's pid (also its process group id), or None before :meth:`start`."""
        return self._popen.pid if self._popen else None

    def start(self) -> int:
        """Spawn the child in a new session and start reading its output; return its pid."""
        self._popen = subprocess.Popen(
            list(self.spec.args),
            cwd=self.spec.cwd,
            env=dict(self.spec.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert self._popen.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self._popen.stdout,), name=f"read-{self.name}", daemon=True
        )
        self._reader.start()
        return self._popen.pid

    def _read(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(lambda: stream.readline(MAX_LINE), b""):
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self._events.put(Line(self.name, text))
        self._events.put(OutputClosed(self.name))

    def poll(self) -> int | None:
        """The child's exit code if it has exited (negative: killed by that signal)."""
        return self._popen.poll() if self._popen else None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds for the child; its exit code, or None if still running."""
        if self._popen is None:
            return None
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal_group(self, signum: int) -> bool:
        """Send ``signum`` to the child's process group; False if the group is gone."""
        if self._popen is None:
            return False
        try:
            os.killpg(self._popen.pid, signum)
        except ProcessLookupError:
            return False
        except PermissionError:
            # macOS answers EPERM for a group whose members are all zombies.
            return False
        return True

    def group_running(self) -> bool:
        """Whether anything in the child's process group still runs (zombies do not count)."""
        if self._popen is None or not self.signal_group(0):
            return False
        # Orphans re-parented to an init that does not reap them stay as zombies and keep
        # the group answering signals, so look for a member that is really alive.
        pgid = self._popen.pid
        for proc in psutil.process_iter(["status"]):
            try:
                if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    return True
            except (ProcessLookupError, psutil.Error):
                continue
        return False


def describe_exit(code: int) -> str:
    """``exited with code 3`` or ``was killed by SIGKILL``, for system lines."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by {name}"
