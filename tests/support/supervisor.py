"""The dyno manager's loop in a thread, as `corral server` runs it, for the tests of the
manager and of the deploy pipeline; and a wait that fails as soon as that loop dies."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

from corral.config import Settings
from corral.router.table import load_route_table
from corral.runtime.cgroups import Hierarchy
from corral.runtime.restart import RestartPolicy
from corral.runtime.supervisor import Supervisor, SupervisorOptions
from corral.store import Store
from support.wait import wait_until

T = TypeVar("T")

#: Quick ticks and a short first restart delay, so the tests see the manager act at once.
OPTIONS = SupervisorOptions(
    boot_timeout=20, grace=5, tick=0.1, policy=RestartPolicy(first_delay=0.3, reset_after=30)
)

#: The manager threads running now, so a waiting test fails as soon as one dies.
_THREADS: list[ManagerThread] = []


class ManagerThread:
    """Runs a Supervisor's loop in a thread, as `corral server` does in its process."""

    def __init__(
        self, settings: Settings, options: SupervisorOptions, cgroups: Hierarchy | None = None
    ) -> None:
        #: The test's own store: its writes wake the supervisor, as the API's do.
        self.store = Store.for_settings(settings)
        own = Store.for_settings(settings, wake=False)  # as `corral server` opens its own
        self.manager = Supervisor(settings, own, options, cgroups=cgroups)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None
        #: False to leave the dynos running when the loop ends (a kill -9 of the platform).
        self.stop_dynos = True

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self.manager.run(self.stop))
            if self.stop_dynos:  # in the manager's own loop, as `corral server` does
                self.loop.run_until_complete(self.manager.stop_all(grace=5))
                self.loop.run_until_complete(self.manager.stop_services(grace=5))
        except BaseException as exc:  # surfaced by the test through .error
            self.error = exc

    def __enter__(self) -> ManagerThread:
        _THREADS.append(self)
        self.thread.start()
        return self

    def _end(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=60)

    def abandon(self) -> None:
        """Stop the loop but leave the dynos running, like a `kill -9` of the platform."""
        self.stop_dynos = False
        self._end()
        if self in _THREADS:
            _THREADS.remove(self)

    def __exit__(self, *exc: object) -> None:
        if self in _THREADS:
            _THREADS.remove(self)
        self._end()
        assert self.error is None, self.error


def _managers_alive() -> None:
    for thread in _THREADS:
        assert thread.error is None, f"the manager loop died: {thread.error!r}"


def wait_managed(predicate: Callable[[], T], timeout: float = 60, message: str = "") -> T:
    """:func:`wait_until` with the manager's pace, failing at once if a manager loop died."""
    return wait_until(
        predicate, timeout=timeout, interval=0.05, message=message, check=_managers_alive
    )


def backends(settings: Settings, app: str) -> list[tuple[str, int]]:
    """``(dyno, port)`` of every backend the route table names for ``app``."""
    path = settings.routes_path
    if not path.exists():
        return []
    route = load_route_table(path).apps.get(app)
    return [(b.dyno, b.port) for b in route.backends] if route else []


def wait_live(settings: Settings, store: Store, app: str) -> None:
    """Wait until ``app``'s deploy is routed *and* released: routes are written first."""
    wait_managed(
        lambda: backends(settings, app) and not store.pending_releases(app),
        message=f"{app}'s release to be routed and marked succeeded",
    )
