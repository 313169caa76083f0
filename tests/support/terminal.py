"""A real pseudo-terminal for driving a CLI as a person at a keyboard would."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

from support.wait import wait_until


class Terminal:
    """``corral ARGS`` running with a pty as its stdin, stdout and stderr."""

    def __init__(
        self, *args: str, env: dict[str, str], cwd: Path | None = None, size: tuple[int, int]
    ) -> None:
        self.master, slave = os.openpty()
        self.resize(*size)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "corral", *args],
            stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm"}, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.output = b""

    def resize(self, rows: int, cols: int) -> None:
        """Set the terminal's size (the CLI is told with SIGWINCH by the caller)."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data: bytes) -> None:
        """Type ``data``."""
        os.write(self.master, data)

    def _read(self) -> None:
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the CLI exited and closed the terminal
                return
            if not chunk:
                return
            self.output += chunk

    def expect(self, text: str, timeout: float = 30) -> str:
        """Wait until ``text`` has been shown; everything shown so far."""

        def seen() -> bool:
            self._read()
            return text.encode() in self.output

        wait_until(seen, timeout, message=lambda: f"never saw {text!r} in {self.output!r}")
        return self.output.decode(errors="replace")

    def wait(self, timeout: float = 30) -> int:
        """Wait for the CLI to exit, reading what it shows meanwhile; its exit status."""

        def exited() -> bool:
            self._read()
            return self.process.poll() is not None

        wait_until(exited, timeout, message=lambda: f"still running; it showed {self.output!r}")
        self._read()
        return self.process.returncode

    def close(self) -> None:
        """Kill the CLI if it still runs; close the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
