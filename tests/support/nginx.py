"""The nginx router (``python -m corral.router.nginx``) as a process, shaped like
:class:`support.router.RouterThread`: a swappable table, a log, a URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from corral.router import RouteTable, Timeouts, save_route_table
from corral.router.nginx import find_nginx
from support.processes import free_port
from support.wait import wait_for_http, wait_until

__all__ = ["NginxRouter", "require_nginx"]


def require_nginx() -> None:
    """Skip when nginx is not installed here, unless in CI (which installs it: fail there)."""
    if find_nginx() is None and not os.environ.get("CI"):
        pytest.skip("nginx is not installed (apt-get install nginx); CI installs it")


class NginxRouter:
    """The nginx watcher serving ``table`` from files under ``root``."""

    def __init__(
        self, root: Path, table: RouteTable, timeouts: Timeouts | None = None, **flags: str
    ) -> None:
        require_nginx()
        self.root = root
        self.table_path = root / "routes.json"
        self.log_dir = root / "logs"
        self.out = root / "nginx-router.out"
        save_route_table(table, self.table_path)
        self._table = table
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        timeouts = timeouts or Timeouts()
        args = [
            sys.executable, "-m", "corral.router.nginx", "--table", str(self.table_path),
            "--bind", f"127.0.0.1:{self.port}", "--prefix", str(root / "nginx"),
            "--logs", str(self.log_dir), "--workers", "1",
            "--request-timeout", str(timeouts.request),
        ]  # fmt: skip
        for flag, value in flags.items():
            args += [f"--{flag.replace('_', '-')}", value]
        with open(self.out, "wb") as out:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for_http(self.url, timeout=20, process=self.process)

    def _alive(self) -> None:
        assert self.process.poll() is None, self.output()

    def output(self) -> str:
        """What the watcher (and nginx's error log) printed."""
        return self.out.read_text(errors="replace")

    @property
    def table(self) -> RouteTable:
        return self._table

    @table.setter
    def table(self, table: RouteTable) -> None:
        """Write ``table`` and return once nginx serves it (or refused it)."""
        before = self._applied()
        self._table = table
        save_route_table(table, self.table_path)
        wait_until(lambda: self._applied() > before, 10, interval=0.01, check=self._alive)

    def _applied(self) -> int:
        text = self.output()
        return text.count("Reloaded nginx") + text.count("Kept the running nginx")

    @property
    def logs(self) -> list[tuple[str, str]]:
        """``(app, line)`` of every router.log line so far (``""`` for no app)."""
        found = []
        for path in sorted(self.log_dir.glob("*/router.log")):
            app = "" if path.parent.name == "_unrouted" else path.parent.name
            for text in path.read_text().splitlines():
                found.append((app, text.partition(" router: ")[2]))
        return found

    def wait_log(self, predicate: Callable[[str], bool], timeout: float = 5) -> tuple[str, str]:
        """The first log line satisfying ``predicate``, polling until a deadline."""
        return wait_until(
            lambda: next(((a, line) for a, line in self.logs if predicate(line)), None),
            timeout,
            interval=0.02,
            message=lambda: f"a matching log line in {self.logs}",
        )

    def close(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
