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
from collections.abc import Callable
from pathlib import Path
from typing import IO

from corral.exitcodes import shell_status
from corral.files import atomic_write
from corral.logfiles import LogFile, format_line, timestamp

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


def _write_status(path: Path, status: int) -> None:
    atomic_write(path, json.dumps({"status": status, "at": timestamp()}), mode=0o600)


def _dies_with(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGTERM when the shim dies (Linux only), so a
    ``kill -9`` of the shim does not leave the dyno serving unseen; the supervisor stops
    whatever is left of the group all the same (:func:`corral.runtime.dyno.stop_orphans`)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the shim died before the prctl took hold
            os._exit(1)

    return preexec


def run(command: list[str], log: LogFile, dyno: str, status_file: Path) -> int:
    """Run ``command`` as the dyno; return its exit status (128+N when killed by signal N)."""
    child = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_dies_with(os.getpid()),
    )
    # The group signal reached the dyno too; the shim outlives it to record how it ended.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    assert child.stdout is not None
    _pump(child.stdout, log, dyno)
    code = child.wait()
    status = shell_status(code)
    how = f"signal {-code}" if code < 0 else f"status {code}"
    _write(log, "corral", dyno, f"Process exited with {how}")
    _write_status(status_file, status)
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m corral.runtime.shim``."""
    parser = argparse.ArgumentParser(prog="corral-shim")
    parser.add_argument("--log", type=Path, required=True, help="the app's log directory")
    parser.add_argument("--dyno", required=True)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    log = LogFile(args.log / f"{args.dyno}.log")
    status = Path(str(args.status).replace("{pid}", str(os.getpid())))
    try:
        return run(command, log, args.dyno, status)
    finally:
        log.close()


if __name__ == "__main__":
    sys.exit(main())
