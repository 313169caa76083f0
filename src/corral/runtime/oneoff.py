"""One-off dynos: a command run once in an app's current release, attached or detached.

An attached one-off (``corral run``) is a child of the API thread serving the session: under a
pseudo-terminal of its own when the client has a terminal (the pty is its controlling
terminal, so ^C from the client's keyboard interrupts it as a local one would), else with
pipes. A detached one-off (``run:detached``) runs under the dyno shim, so its output goes to
the app's logs as ``app[run.1234]`` lines. Both run in a session of their own, which
:func:`kill_session` ends whole when the client goes away or ``ps:kill`` asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import secrets
import select
import shlex
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from corral import wire
from corral.builder.slug import load_slug
from corral.runtime import confined
from corral.runtime import dyno as dynos
from corral.runtime.cgroups import Group
from corral.runtime.confined import Confinement
from corral.runtime.environ import base_environ, process_environ
from corral.store import Store
from corral.store.models import OneOff, Release

__all__ = [
    "Attached",
    "OneOffSpec",
    "kill_session",
    "live_one_offs",
    "one_off_spec",
    "spawn",
    "start_detached",
    "stop_all",
]

#: A single-word command with any of these is a shell command line.
_SHELL_WORDS = re.compile(r"[\s;&|<>()$`\\\"'*?\[\]#~=%]")


@dataclass(frozen=True)
class OneOffSpec:
    """What to run once: the command, in which release's slug, with which environment."""

    app: str
    name: str
    command: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    release_version: int
    #: As whom and with which limits it runs (its app's user and cgroup, where there are).
    confinement: Confinement = field(default_factory=Confinement)

    @property
    def python(self) -> Path:
        """The app's own Python (every app user can run its own; not so corral's)."""
        return Path(self.env["VIRTUAL_ENV"]) / "bin" / "python"


def one_off_spec(
    release: Release,
    command: list[str],
    *,
    taken: Collection[str] = (),
    term: str | None = None,
    confinement: Confinement | None = None,
) -> OneOffSpec:
    """A one-off of ``command`` in ``release``: its slug, config vars and a fresh ``run.N``."""
    slug = load_slug(release.slug_path)
    confinement = confinement or Confinement()
    name = f"run.{secrets.randbelow(9000) + 1000}"
    while name in taken:
        name = f"run.{secrets.randbelow(9000) + 1000}"
    base = {**base_environ(), **confinement.environ()}
    env = process_environ(slug, base=base, config=release.config, dyno=name)
    if term:
        env["TERM"] = term
    argv = command
    if len(command) == 1 and _SHELL_WORDS.search(command[0]):
        argv = ["/bin/sh", "-c", command[0]]  # `corral run "echo hi; exit 3"`, as Heroku runs it
    return OneOffSpec(release.app, name, tuple(argv), slug.path, env, release.version, confinement)


class Attached:
    """A running attached one-off: where its output comes from and where its input goes.

    Input is written without blocking (a command that does not read must not stall the
    session); :meth:`pending` says whether some is still waiting.
    """

    def __init__(
        self,
        process: subprocess.Popen,
        stdin: int,
        outputs: dict[int, int],
        group: Group | None = None,
    ) -> None:
        self.process = process
        self.group = group
        self.pid = process.pid
        self.started_at = psutil.Process(process.pid).create_time()
        #: fd -> the wire stream its bytes go out on.
        self.outputs = outputs
        self.stdin: int | None = stdin
        self.tty = stdin in outputs
        self._pending = b""
        self._eof = False
        os.set_blocking(stdin, False)

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the command's input and write what it takes now."""
        if self.stdin is None:
            return
        self._pending += data
        self.flush()

    def pending(self) -> int:
        """Bytes of input not yet taken by the command."""
        return len(self._pending)

    def flush(self) -> None:
        """Write as much queued input as the command takes without blocking."""
        while self._pending and self.stdin is not None:
            try:
                written = os.write(self.stdin, self._pending[:65536])
            except BlockingIOError:
                return
            except OSError:  # the command closed its input: what it did not read is dropped
                self._pending = b""
                break
            self._pending = self._pending[written:]
        if self._eof and not self._pending and self.stdin is not None:
            os.close(self.stdin)  # after the last queued byte, not before
            self.stdin = None

    def end_input(self) -> None:
        """The client's input ended (Ctrl-D, or the end of a pipe)."""
        if self.tty and self.stdin is not None:
            self.write(termios.tcgetattr(self.stdin)[6][termios.VEOF])
        else:
            self._eof = True
            self.flush()

    def resize(self, rows: int, cols: int) -> None:
        """Set the pseudo-terminal's size (the command gets SIGWINCH); no-op without one."""
        if self.tty and self.stdin is not None:
            set_size(self.stdin, rows, cols)

    def send_signal(self, name: str) -> None:
        """Signal the command's process group (``INT`` for Ctrl-C without a terminal)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.Signals[f"SIG{name}"])

    def close(self) -> int:
        """End the one-off's whole session, close its descriptors; its status as a shell says."""
        kill_session(self.pid)
        code = self.process.wait()
        confined.release(self.group)
        self.group = None
        for fd in {*self.outputs, *([self.stdin] if self.stdin is not None else [])}:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.outputs = {}
        self.stdin = None
        return code


def set_size(fd: int, rows: int, cols: int) -> None:
    """Set the window size of the terminal on ``fd``."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def spawn(spec: OneOffSpec, *, tty: bool, rows: int = 24, cols: int = 80) -> Attached:
    """Start ``spec`` attached: under a new pseudo-terminal of ``rows`` x ``cols``, or pipes.

    A command that cannot be started says so as its own output, with status 127.
    """
    options: dict[str, Any] = {
        "name": spec.name, "python": spec.python, "confinement": spec.confinement,
    }  # fmt: skip
    if not tty:
        process, group = confined.start(
            list(spec.command), cwd=spec.cwd, env=dict(spec.env), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **options,
        )  # fmt: skip
        pipes = (process.stdin, process.stdout, process.stderr)
        # Raw descriptors from here on: the Popen's file objects must not close them too.
        stdin, stdout, stderr = (os.dup(f.fileno()) for f in pipes if f is not None)
        for f in pipes:
            if f is not None:
                f.close()
        process.stdin = process.stdout = process.stderr = None
        return Attached(process, stdin, {stdout: wire.STDOUT, stderr: wire.STDERR}, group)
    master, slave = os.openpty()
    ready, ready_w = os.pipe()
    try:
        set_size(master, rows, cols)
        process, group = confined.start(
            list(spec.command), cwd=spec.cwd, env=dict(spec.env), stdin=slave, stdout=slave,
            stderr=slave, tty_ready=ready_w, **options,
        )  # fmt: skip
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
        os.close(ready_w)
    try:
        select.select([ready], [], [], 10)  # EOF once the pty is the launcher's terminal
    finally:
        os.close(ready)
    return Attached(process, master, {master: wire.STDOUT}, group)


def start_detached(
    spec: OneOffSpec, log_dir: Path, run_dir: Path
) -> tuple[dynos.DynoProcess, dynos.ShimChild]:
    """Start ``spec`` under the dyno shim, its output to the app's logs; the caller reaps it."""
    confinement = spec.confinement
    user = confinement.user
    dyno = dynos.DynoSpec(
        spec.app, spec.name, shlex.join(spec.command), spec.cwd, spec.env,
        cgroup=confinement.parent, limits=confinement.limits,
        user=(user.uid, user.gid) if user else None,
    )  # fmt: skip
    group = confined.make_group(confinement, spec.name)
    try:
        return dynos.start(dyno, log_dir, run_dir, group)
    except BaseException:
        confined.release(group)
        raise


def kill_session(pid: int) -> None:
    """SIGKILL every process of the session ``pid`` leads (the caller knows it is ours).

    A whole session, not a process group: an interactive shell puts each job in a group
    of its own, and a one-off's background jobs must not outlive it.
    """
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(proc.pid) == pid:
                members.append(proc.pid)
    for member in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def live_one_offs(store: Store, app: str) -> list[OneOff]:
    """The app's recorded one-offs still running; the rows of those gone are forgotten."""
    live = []
    for one_off in store.one_offs(app):
        if dynos.DynoProcess(one_off.pid, one_off.pid_start_time).alive():
            live.append(one_off)
        else:  # its API died with it, or never got to forget it
            store.delete_one_off(app, one_off.name, one_off.pid)
    return live


async def stop_all(store: Store, grace: float) -> None:
    """Stop every running one-off (a clean shutdown of the platform): SIGTERM, then SIGKILL."""
    running = [
        dynos.DynoProcess(o.pid, o.pid_start_time)
        for o in store.one_offs()
        if dynos.DynoProcess(o.pid, o.pid_start_time).alive()
    ]
    for process in running:
        dynos.signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(p.alive() for p in running) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for process in running:
        if process.alive():
            kill_session(process.pid)
