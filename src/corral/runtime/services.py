"""The platform's own services (the API, the router, ...) as units of the supervisor.

A service is declared by a :class:`ServiceSpec` and supervised like a dyno: it runs under
the same shim, keeps a row in the store (app ``corral``), is adopted after a restart of
the platform by pid and start time, is restarted with the same backoff, and writes the
same ``corral[api]: ...`` lines, to ``logs/corral/``. ``corral ps --platform`` lists them.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from corral.errors import UserError
from corral.runtime import dyno as dynos
from corral.runtime.plan import due_for_restart
from corral.runtime.units import Running, Units
from corral.store import StoreBusy
from corral.store.models import Dyno
from corral.store.names import PLATFORM_APP

__all__ = ["PLATFORM_APP", "PORT", "ServiceSpec", "Services", "free_port"]

#: Stands in a service's command for the port it is given (``listens=True``).
PORT = "{port}"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing listens on right now, for a new web dyno or service."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ServiceSpec:
    """One platform service: what to run, and whether it gets a loopback port to serve on."""

    name: str
    command: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)
    #: Given a fresh loopback port at each start (``{port}`` in the command), health-checked
    #: on it; adopted services keep the port they had.
    listens: bool = False
    #: Run before each start (the API fails the builds that died with its last run).
    before_start: Callable[[], object] | None = None
    #: The uid and gid it runs as (PostgreSQL refuses root), or None: the platform's.
    user: tuple[int, int] | None = None

    def dyno_spec(self, port: int | None) -> dynos.DynoSpec:
        """The unit to start, with ``port`` put in place of ``{port}``."""
        words = [word.replace(PORT, str(port)) for word in self.command]
        command = "exec " + shlex.join(words)
        # the platform's own files (store, slugs, logs) stay private to its user
        return dynos.DynoSpec(
            PLATFORM_APP, self.name, command, self.cwd, self.env, port, umask=0o077,
            user=self.user,
        )  # fmt: skip


class Services:
    """Keeps each declared service running: adopt, start, restart with backoff, stop."""

    def __init__(self, units: Units, specs: Iterable[ServiceSpec], boot_timeout: float) -> None:
        self.units = units
        self.specs = {spec.name: spec for spec in specs}
        self.boot_timeout = boot_timeout
        self.running: dict[str, Running] = {}
        #: Where more services are declared, and the names each declared last.
        self._sources: dict[Callable[[], Iterable[ServiceSpec]], set[str]] = {}

    def follow(self, source: Callable[[], Iterable[ServiceSpec]]) -> None:
        """Also keep running the services ``source`` declares, asked again at each tick
        (add-on servers, which exist once an add-on made them); one it no longer declares
        is stopped. A source that fails keeps what it declared last."""
        self._sources[source] = set()
        self._refresh()

    def _refresh(self) -> None:
        for source, before in self._sources.items():
            try:
                declared = {spec.name: spec for spec in source()}
            except (OSError, ValueError, KeyError, UserError) as exc:
                self.units.log(PLATFORM_APP, "supervisor", f"Cannot list add-on servers ({exc})")
                continue
            for name in before - declared.keys():
                self.specs.pop(name, None)
                gone = self.running.pop(name, None)
                if gone is not None:
                    self.units.drain(gone)
            for name, spec in declared.items():
                self.specs.setdefault(name, spec)
            self._sources[source] = set(declared)

    def adopt(self, rows: Iterable[Dyno], legacy_state: Path | None = None) -> None:
        """Take over the services a previous run left (rows of app ``corral``)."""
        self._refresh()
        rows = list(rows)
        if legacy_state is not None and legacy_state.exists():
            rows += self._legacy_rows(legacy_state)
        for row in rows:
            if row.name not in self.specs:
                self.units.forget(row)
            elif row.name not in self.running:
                self.running[row.name] = self.units.adopt(row)

    def _legacy_rows(self, path: Path) -> list[Dyno]:
        # corral before 0.2 kept its services in run/platform.json: adopt them once
        try:
            state = json.loads(path.read_text())
            rows = [
                Dyno(PLATFORM_APP, name, name, 0, int(entry["pid"]), float(entry["started_at"]),
                     int(entry["port"]) if self.specs[name].listens else None, "up", 0, None,
                     time.time())
                for name, entry in state.items()
                if name in self.specs
            ]  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError):
            rows = []  # unreadable: nothing to adopt
        for row in rows:
            self.units.save(row)
        path.unlink()
        return rows

    def alive(self, name: str) -> bool:
        """Whether service ``name`` runs now (adopted or started)."""
        r = self.running.get(name)
        return r is not None and not r.exited()

    def port(self, name: str, *, up: bool = False) -> int | None:
        """The port service ``name`` serves on while it runs (starting or up; with ``up``,
        only once it has answered)."""
        r = self.running.get(name)
        if r is None or r.row.state == "crashed" or (up and r.row.state != "up"):
            return None
        return r.row.port

    def start_missing(self) -> list[str]:
        """Start at once every service that is not running, its crash count forgotten.

        For a platform that starts: a service found dead is started now, not after the
        backoff its last run's crashes earned. Returns the names started, in spec order.
        """
        started = []
        for name, spec in self.specs.items():
            if not self.alive(name):
                self.running[name] = self._start(spec, self.running.get(name))
                started.append(name)
        return started

    def tick(self) -> list[str]:
        """Start what is missing, notice what exited, restart what is due; returns starts."""
        started = []
        now = time.time()
        self._refresh()
        for name, spec in self.specs.items():
            r = self.running.get(name)
            if r is None:
                self.running[name] = self._start(spec, None)
                started.append(name)
            elif r.row.state != "crashed" and r.exited():
                self.units.exited(r)
            elif r.row.state == "crashed" and due_for_restart(r.row.next_restart_at, now):
                self.running[name] = self._start(spec, r, restarts=r.row.restarts)
                started.append(name)
            elif r.row.state == "starting":
                self.units.check_boot(r, self.boot_timeout)
        return started

    def _start(self, spec: ServiceSpec, last: Running | None, restarts: int = 0) -> Running:
        if spec.before_start is not None:
            try:
                spec.before_start()
            except StoreBusy:  # it must run first (the API fails builds): a start put off
                self.units.writes.refused()
                return self._not_started(spec, last, restarts, "the store is busy")
        port = None
        if spec.listens:  # the same port again if it is free: the route to it stays right
            port = last.row.port if last and last.row.port and _free(last.row.port) else free_port()
        try:
            return self.units.start(spec.dyno_spec(port), 0, restarts=restarts)
        except (OSError, psutil.Error) as exc:  # a crash like any other: logged, retried
            return self._not_started(spec, last, restarts, str(exc), port)

    def _not_started(
        self,
        spec: ServiceSpec,
        last: Running | None,
        restarts: int,
        why: str,
        port: int | None = None,
    ) -> Running:
        self.units.log(PLATFORM_APP, spec.name, f"Could not start ({why})")
        if port is None and last is not None:
            port = last.row.port
        row = Dyno(PLATFORM_APP, spec.name, spec.name, 0, None, None, port, "starting",
                   restarts, None, time.time())  # fmt: skip
        failed = Running(row, None)
        self.units.exited(failed)
        return failed

    async def stop(self, names: Iterable[str], grace: float) -> None:
        """Stop the services ``names`` (those a start that failed had started), now; the
        shim zygote with the last of them (a dyno still running keeps its shim)."""
        chosen = [self.running.pop(name) for name in names if name in self.running]
        await asyncio.gather(*(self.units.stop(r, grace) for r in chosen))
        if not self.running:  # in a thread: it waits for the zygote to exit
            await asyncio.to_thread(self.units.zygote.stop)

    async def stop_all(self, grace: float) -> None:
        """Stop every service (a clean shutdown of the platform), and the shim zygote."""
        await self.stop(list(self.running), grace)
