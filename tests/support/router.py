"""The embedded router on its own event loop in a thread, with a swappable table and a log."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from corral.router import Limits, Router, RouteTable, Timeouts
from support.wait import wait_until

__all__ = ["RouterThread"]


class RouterThread:
    """A Router on its own event loop in a thread, with a swappable table and a log list."""

    def __init__(
        self,
        table: RouteTable,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        **options: Any,
    ) -> None:
        self.table = table
        self.logs: list[tuple[str, str]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.router = Router(
            lambda: self.table,
            log=lambda app, line: self.logs.append((app, line)),
            timeouts=timeouts,
            limits=limits,
            **options,
        )
        self.port = asyncio.run_coroutine_threadsafe(self.router.start(), self.loop).result(5)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.router.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def wait_log(self, predicate: Callable[[str], bool], timeout: float = 5) -> tuple[str, str]:
        """The first log entry whose line satisfies ``predicate``, polling until a deadline."""
        return wait_until(
            lambda: next(((a, line) for a, line in list(self.logs) if predicate(line)), None),
            timeout,
            interval=0.01,
            message=lambda: f"a matching log line in {self.logs}",
        )
