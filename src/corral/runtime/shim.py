"""The shim that holds one dyno: it owns the dyno's output and outlives the platform.

``python -m corral.runtime.shim --log DIR --dyno web.1 --status FILE -- COMMAND...`` starts
COMMAND in the shim's own process group (the manager starts the shim as a session leader
and signals the whole group), writes each output line stamped and tagged
(``2026-11-24T10:00:00.123456+00:00 app[web.1]: ...``) to ``DIR/web.1.log`` (rotated by
size), and on exit records the status in FILE. Because the shim, not the supervisor,
reads the pipe, the manager can die and be restarted without the dyno losing a line.
On SIGTERM or SIGINT the shim stays to collect the dyno's last lines and status; it
leaves when the dyno does.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from corral.exitcodes import shell_status
from corral.files import atomic_write
from corral.logfiles import LogFile, format_line, timestamp
from corral.runtime.cgroups import Group, Limits, detect

#: ``prctl`` option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def _write(log: LogFile, source: str, dyno: str, text: str) -> None:
    """Write one line, stamped now; ``text`` must not contain a newline."""
    log.write(format_line(timestamp(), source, dyno, text) + "\n")
    # On disk at once: the shim may be killed, and the line must not die with it.
    log.flush()


def _pump(stream: IO[bytes], log: LogFile, dyno: str) -> None:
    """Copy whole lines from ``stream`` to ``log`` until the dyno closes its output."""
    pending = b""
    while chunk := stream.read1(65536):  # type: ignore[attr-defined]
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            _write(log, "app", dyno, raw.rstrip(b"\r").decode("utf-8", "replace"))
    if pending:
        _write(log, "app", dyno, pending.decode("utf-8", "replace"))


def _write_status(path: Path, status: int, oom_killed: bool) -> None:
    record = {"status": status, "at": timestamp(), "oom_killed": oom_killed}
    atomic_write(path, json.dumps(record), mode=0o600)


def _dies_with(
    parent: int, group: Group | None, user: tuple[int, int] | None = None
) -> Callable[[], None] | None:
    """A ``preexec_fn`` putting the child in ``group`` (if any), then making it ``user``
    (uid, gid; no other groups), and making it get SIGTERM when the shim dies (Linux
    only), so a ``kill -9`` of the shim does not leave the dyno serving unseen; the
    supervisor stops whatever is left of the process group all the same
    (:func:`corral.runtime.dyno.stop_orphans`)."""
    if not sys.platform.startswith("linux") and user is None:
        return (lambda: group.add(os.getpid())) if group else None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child

    def preexec() -> None:
        if group is not None:  # before it runs a line of the app's code; the shim stays out
            group.add(os.getpid())  # as root: the app's user may not move itself
        if user is not None:
            os.setgroups([])
            os.setgid(user[1])
            os.setuid(user[0])
        # after the change of user, which clears it
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the shim died before the prctl took hold
            os._exit(1)

    return preexec


def _r15(log: LogFile, dyno: str, limit: int) -> None:
    message = (
        f"Error R15 (Memory quota vastly exceeded): the kernel stopped the dyno "
        f"at its limit of {limit >> 20}M"
    )
    _write(log, "corral", dyno, message)


def _watch_oom(
    group: Group, limit: int, log: LogFile, dyno: str, stop: threading.Event, said: threading.Event
) -> None:
    # The kernel kills one process at the limit (a gunicorn worker, which the master would
    # just replace); Heroku's R15 stops the whole dyno, and so does this.
    while not stop.wait(0.25):
        if group.oom_kills():
            _r15(log, dyno, limit)
            said.set()
            group.kill()
            return


def run(
    command: list[str],
    log: LogFile,
    dyno: str,
    status_file: Path,
    limits: Limited | None = None,
    umask: int = 0o022,
    user: tuple[int, int] | None = None,
) -> int:
    """Run ``command`` as the dyno; return its exit status (128+N when killed by signal N).

    With ``limits`` the dyno runs in a cgroup of its own, removed once all in it are gone;
    with ``user`` (uid, gid) it runs as that user, while the shim stays the platform's.
    """
    group = limits.enter(log, dyno) if limits else None
    child = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        umask=umask,
        preexec_fn=_dies_with(os.getpid(), group, user),
    )
    # The group signal reached the dyno too; the shim outlives it to record how it ended.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    stop, said = threading.Event(), threading.Event()
    if group is not None and limits is not None:
        watch = (group, limits.limits.memory, log, dyno, stop, said)
        watcher = threading.Thread(target=_watch_oom, args=watch, daemon=True)
        watcher.start()
    assert child.stdout is not None
    _pump(child.stdout, log, dyno)
    code = child.wait()
    oom_killed = False
    if group is not None and limits is not None:
        stop.set()
        watcher.join()
        oom_killed = group.oom_kills() > 0
        if oom_killed and not said.is_set():  # one process, killed before the watcher looked
            _r15(log, dyno, limits.limits.memory)
        group.kill()  # what the dyno left running dies with it
        group.remove()
    status = shell_status(code)
    how = f"signal {-code}" if code < 0 else f"status {code}"
    _write(log, "corral", dyno, f"Process exited with {how}")
    _write_status(status_file, status, oom_killed)
    return status


@dataclass(frozen=True)
class Limited:
    """Where the dyno's cgroup goes (its app's group) and what it may use."""

    parent: str
    limits: Limits

    def enter(self, log: LogFile, dyno: str) -> Group | None:
        """Create the dyno's group; say so in its log and run without one if that fails."""
        hierarchy, why = detect()
        try:
            if hierarchy is None:
                raise OSError(why)
            return hierarchy.create(f"{self.parent}/{dyno}.{os.getpid()}", self.limits)
        except OSError as error:
            _write(log, "corral", dyno, f"Running without kernel limits: {error}")
            return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m corral.runtime.shim``."""
    parser = argparse.ArgumentParser(prog="corral-shim")
    parser.add_argument("--log", type=Path, required=True, help="the app's log directory")
    parser.add_argument("--dyno", required=True)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--umask", default="022", help="the dyno's file-creation mask, in octal")
    parser.add_argument("--cgroup", help="the app's cgroup, to run the dyno in a group of its own")
    parser.add_argument("--memory", type=int, help="with --cgroup: the memory limit in bytes")
    parser.add_argument("--pids", type=int, default=Limits.pids, help="with --cgroup")
    parser.add_argument("--user", help="UID:GID the dyno runs as (the shim stays who it is)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    log = LogFile(args.log / f"{args.dyno}.log")
    status = Path(str(args.status).replace("{pid}", str(os.getpid())))
    limits = None
    if args.cgroup and args.memory:
        limits = Limited(args.cgroup, Limits(memory=args.memory, pids=args.pids))
    try:
        uid, _, gid = (args.user or "").partition(":")
        user = (int(uid), int(gid)) if args.user else None
        return run(command, log, args.dyno, status, limits, int(args.umask, 8), user)
    finally:
        log.close()


if __name__ == "__main__":
    sys.exit(main())
