"""One supervised unit at a time: start it, record it, notice it exited, stop or drain it.

A unit is a dyno of an app or one of the platform's own services (the API, the router);
both run under the same shim (:mod:`corral.runtime.dyno`), keep a row in the store's
``dynos`` table and write the same platform lines (``corral[web.1]: State changed ...``)
to their app's log. :class:`Units` is the narrow interface the supervisor and a rollout
use; it knows nothing of formations, releases or routes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from corral.config import Settings
from corral.logfiles import LogLine, append_line, timestamp
from corral.runtime import dyno as dynos
from corral.runtime import plan
from corral.runtime.busy import StoreWrites
from corral.runtime.cgroups import Group, Hierarchy
from corral.runtime.restart import RestartPolicy
from corral.runtime.shimfork import ZygoteKeeper
from corral.store import Store
from corral.store.models import Dyno
from corral.store.names import PLATFORM_APP

__all__ = ["ROUTE_SETTLE", "Running", "Units"]

#: Seconds between taking a web dyno out of the route table and stopping it: longer than
#: the router's reload interval (0.2 s), so no request is routed to a closing dyno.
ROUTE_SETTLE = 1.0
#: Seconds between samples of the memory of units no cgroup holds: each sample scans
#: every process on the host, so it runs off the loop, once for all units.
MEMORY_INTERVAL = 2.0


@dataclass
class Running:
    """A unit the supervisor owns (or adopted), with what it knows beyond the store row."""

    row: Dyno
    process: dynos.DynoProcess | None
    popen: dynos.ShimChild | None = None
    started: float = field(default_factory=time.monotonic)
    memory_warned: bool = False
    #: A health check of this unit is in flight (one at a time: sync workers queue them).
    probing: bool = False
    #: The kernel holds it to its memory limit (a cgroup): no polling needed.
    kernel_limited: bool = False

    def exited(self) -> bool:
        """Whether the unit's shim is gone."""
        if self.process is None:
            return True
        if self.popen is not None:
            return self.popen.poll() is not None
        return not self.process.alive()


class Units:
    """Starts, stops and drains single units, keeping their store rows and log lines."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        grace: float,
        policy: RestartPolicy,
        routes_changed: Callable[[], None] = lambda: None,
        cgroups: Hierarchy | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._memory_due = 0.0
        self.grace = grace
        self.policy = policy
        #: Called before a serving web dyno is stopped, so the router stops sending to it.
        self._routes_changed = routes_changed
        self._background: set[asyncio.Task[None]] = set()
        #: Every row written goes through here: a busy store delays them, never loses them.
        self.writes = StoreWrites(lambda message: self.log(PLATFORM_APP, "supervisor", message))
        #: The host's cgroups, when dynos run with kernel limits.
        self.cgroups = cgroups
        #: The home's shim zygote, which forks shims that share its memory.
        self.zygote = ZygoteKeeper(settings.run_dir)

    def log(self, app: str, unit: str, message: str) -> None:
        """A platform line in the app's log: ``corral[web.1]: message``."""
        append_line(
            self.settings.logs_dir(app), "corral", LogLine(timestamp(), "corral", unit, message)
        )

    def start(
        self,
        spec: dynos.DynoSpec,
        version: int,
        *,
        restarts: int = 0,
        record: bool = True,
        health_checked: bool | None = None,
    ) -> Running:
        """Start ``spec`` under its shim; ``record`` puts its row in the store at once.

        A unit with a port starts in state ``starting`` until a health check says it is
        up; one without is up as soon as it runs.
        """
        checked = spec.port is not None if health_checked is None else health_checked
        self.log(spec.app, spec.name, f"Starting process with command `{spec.command}`")
        self.zygote.ensure()  # else the dyno's shim is exec'd, as before zygotes
        group = self._create_group(spec)
        try:
            process, popen = dynos.start(
                spec, self.settings.logs_dir(spec.app), self.settings.run_dir, group
            )
        except BaseException:
            if group is not None:
                group.remove()
            raise
        row = Dyno(
            app=spec.app,
            name=spec.name,
            process_type=spec.process_type,
            release_version=version,
            pid=process.pid,
            pid_start_time=process.started_at,
            port=spec.port,
            state="starting" if checked else "up",
            restarts=restarts,
            since=time.time(),
        )
        if record:
            self.save(row)
        if not checked:
            self.log(spec.app, spec.name, "State changed from starting to up")
        return Running(row, process, popen, kernel_limited=group is not None)

    def _create_group(self, spec: dynos.DynoSpec) -> Group | None:
        """The dyno's own cgroup under its app's, with its limits (the shim removes it)."""
        if self.cgroups is None or spec.cgroup is None or spec.limits is None:
            return None
        try:
            self.cgroups.prepare(spec.cgroup)
            path = f"{spec.cgroup}/{spec.name}.{secrets.token_hex(4)}"
            return self.cgroups.create(path, spec.limits)
        except OSError as error:  # said in the dyno's log; it runs all the same
            self.log(spec.app, spec.name, f"Running without kernel limits: {error}")
            return None

    def remove_groups(self, cgroup: str) -> None:
        """Remove the cgroups under ``cgroup`` that no process is in (an app's once its dynos
        are gone; the platform's at a clean stop)."""
        if self.cgroups is not None:
            self.cgroups.remove_empty(cgroup)

    def adopt(self, row: Dyno) -> Running:
        """The unit ``row`` describes, taken over if its process still runs."""
        process = None
        if row.pid is not None and row.pid_start_time is not None:
            candidate = dynos.DynoProcess(row.pid, row.pid_start_time)
            process = candidate if candidate.alive() else None
            if process is None:  # its shim died while the platform was down
                self._stop_orphans(row, candidate)
        running = Running(row, process, kernel_limited=self.cgroups is not None)
        if process is None and row.state != "crashed":
            self.exited(running)
        elif process is not None:
            self.log(row.app, row.name, f"Adopted running process (pid {row.pid})")
        return running

    def set_state(self, r: Running, state: str, **changes: object) -> None:
        """Record ``r`` in ``state`` (a logged change of state when it is one)."""
        if state != r.row.state:
            self.log(r.row.app, r.row.name, f"State changed from {r.row.state} to {state}")
        r.row = replace(r.row, state=state, since=time.time(), **changes)  # type: ignore[arg-type]
        self.save(r.row)

    def save(self, row: Dyno) -> None:
        """Record ``row`` in the store, now or (the store busy) as soon as it allows."""
        self.writes.defer((row.app, row.name, row.pid), self.store.upsert_dyno, row)

    def forget(self, row: Dyno, *, whoever: bool = False) -> None:
        """Remove ``row``'s unit from the store, unless another process has its name since
        (with ``whoever``, whichever process the store names)."""

        def delete() -> None:
            current = {d.name: d for d in self.store.dynos(row.app)}.get(row.name)
            if current is not None and (whoever or current.pid == row.pid):
                self.store.delete_dyno(row.app, row.name)

        self.writes.defer((row.app, row.name, row.pid), delete)

    def exited(self, r: Running) -> None:
        """Record that ``r`` exited: crashed, with the restart delay its crash count earns."""
        status = None
        if r.popen is not None:
            r.popen.wait()
        if r.row.pid is not None:
            status = dynos.recorded_status(self.settings.run_dir, r.row.app, r.row.name, r.row.pid)
        if r.process is not None:
            self._stop_orphans(r.row, r.process)
        crashes = self.policy.crashes_after(r.row.restarts, time.monotonic() - r.started)
        delay = self.policy.delay(crashes)
        if status is None:
            self.log(r.row.app, r.row.name, "Process exited (status unknown)")
        self.set_state(r, "crashed", restarts=crashes, next_restart_at=time.time() + delay)
        if delay:
            self.log(r.row.app, r.row.name, f"Restarting in {delay:.0f}s (crash {crashes})")

    def _stop_orphans(self, row: Dyno, process: dynos.DynoProcess) -> None:
        """A unit whose shim died (``kill -9``) may still run: stopped before it is replaced."""
        left = dynos.stop_orphans(process)
        if left:
            pids = ", ".join(map(str, left))
            self.log(row.app, row.name, f"Stopped what its shim left running (pids {pids})")

    def check_boot(self, r: Running, boot_timeout: float) -> None:
        """Move a ``starting`` unit on: up once it answers HTTP, R10 past the boot timeout."""
        if time.monotonic() - r.started > boot_timeout:
            self.log(r.row.app, r.row.name, "Error R10 (Boot timeout): no response on $PORT")
            self.drain(r, grace=0)
            self.set_state(r, "crashed", restarts=r.row.restarts + 1, next_restart_at=time.time())
            return
        if not r.probing:  # the check runs beside the tick, which goes on
            r.probing = True
            self._in_background(self._probe(r))

    async def _probe(self, r: Running) -> None:
        try:
            up = r.row.port and await dynos.healthy(r.row.port, None, timeout=1)
        finally:
            r.probing = False
        if up and r.row.state == "starting" and not r.exited():
            self.set_state(r, "up")

    def polled(self, r: Running) -> bool:
        """Whether ``r``'s memory is the supervisor's to watch (no cgroup holds it)."""
        return r.process is not None and r.row.state == "up" and not r.kernel_limited

    async def check_memory(self, quotas: list[tuple[Running, int]]) -> None:
        """Sample the units' memory in one scan, off the loop, every ``MEMORY_INTERVAL``,
        and judge each by its quota."""
        watched = [(r, quota) for r, quota in quotas if self.polled(r)]
        if not watched or time.monotonic() < self._memory_due:
            return
        self._memory_due = time.monotonic() + MEMORY_INTERVAL
        roots = [r.process.pid for r, _ in watched if r.process is not None]
        used = await asyncio.to_thread(dynos.tree_memory, roots)
        for r, quota in watched:
            if self.polled(r) and r.process is not None:  # still: the scan took a while
                self._judge_memory(r, used.get(r.process.pid, 0), quota)

    def _judge_memory(self, r: Running, used: int, quota: int) -> None:
        """Warn (R14) once when a serving unit passes ``quota`` bytes; restart it (R15) far past."""
        verdict = plan.memory_verdict(used, quota, warned=r.memory_warned)
        if verdict == "restart":
            message = f"Error R15 (Memory quota vastly exceeded): {used >> 20}M, restarting"
            self.log(r.row.app, r.row.name, message)
            # at once: a copy in its grace period beside its replacement doubles the memory
            self.drain(r, grace=0)
            self.set_state(r, "crashed", next_restart_at=time.time())
        elif verdict == "warn":
            message = f"Error R14 (Memory quota exceeded): {used >> 20}M of {quota >> 20}M"
            self.log(r.row.app, r.row.name, message)
            r.memory_warned = True

    def drain(self, r: Running, grace: float | None = None) -> None:
        """Stop ``r`` in the background (SIGTERM, grace, SIGKILL) and forget its row.

        A web dyno that was serving first leaves the route table: the SIGTERM waits until
        the router has reloaded it, so no request is sent to a closed listener.
        """
        settle = ROUTE_SETTLE if r.row.port and r.row.state == "up" else 0.0
        self._in_background(self.stop(r, self.grace if grace is None else grace, settle=settle))

    async def stop(
        self, r: Running, grace: float, *, forget: bool = True, settle: float = 0
    ) -> None:
        """Stop ``r`` now: SIGTERM its group, wait ``grace`` seconds, SIGKILL what is left."""
        if settle:
            self._routes_changed()
            await asyncio.sleep(settle)
        if r.process is not None and not r.exited():
            self.log(r.row.app, r.row.name, "Stopping process with SIGTERM")
            await dynos.stop(r.process, grace, r.popen)
        elif r.popen is not None:
            r.popen.poll()
        if forget:
            self.forget(r.row)

    async def drained(self) -> None:
        """Wait until every unit on its way out has stopped."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _in_background(self, work) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
