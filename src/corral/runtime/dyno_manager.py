"""The dyno manager: converge the machine to the formation in the store, and keep it there.

Each tick it compares what runs with what the store asks for. A release the dynos do not
run yet (a pending deploy, a config change, a rollback) is rolled out with zero downtime:
new web dynos boot on new ports and must pass a health check before the routes switch to
them; then the old dynos are drained. If they fail, a pending release is marked failed and
the old dynos keep serving. Dynos that exit are restarted with backoff; dynos found
running after a restart of the platform are adopted, not restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from corral.builder.slug import load_slug
from corral.config import Settings
from corral.router.table import AppRoute, Backend, RouteTable, save_route_table
from corral.runtime import dyno as dynos
from corral.runtime.environ import process_environ
from corral.runtime.logs import LogLine, append_line
from corral.runtime.restart import RestartPolicy
from corral.runtime.rollout import Rollouts
from corral.runtime.shim import timestamp
from corral.store import Store
from corral.store.models import App, Dyno, Release

#: Process types that are not dynos: ``release`` runs once per deploy.
NOT_DYNOS = frozenset({"release"})
#: Seconds between taking a web dyno out of the route table and stopping it: longer than
#: the router's reload interval (0.2 s), so no request is routed to a closing dyno.
ROUTE_SETTLE = 1.0


@dataclass(frozen=True)
class ManagerOptions:
    """How patient and how strict the manager is."""

    boot_timeout: float = 60.0
    grace: float = 30.0
    memory_quota: int = 512 * 1024 * 1024
    tick: float = 0.25
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    domain: str = "localhost"


@dataclass
class Running:
    """A dyno the manager owns (or adopted), with what it knows beyond the store row."""

    row: Dyno
    process: dynos.DynoProcess | None
    popen: subprocess.Popen | None = None
    started: float = field(default_factory=time.monotonic)
    memory_warned: bool = False

    def exited(self) -> bool:
        """Whether the dyno's shim is gone."""
        if self.process is None:
            return True
        if self.popen is not None:
            return self.popen.poll() is not None
        return not self.process.alive()


def free_port() -> int:
    """A loopback port nothing listens on right now, for a new web dyno."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def web_concurrency(memory_quota: int) -> int:
    """gunicorn workers per web dyno: one per 256 MB of quota, at most two per core."""
    return max(1, min(2 * (os.cpu_count() or 1), memory_quota // (256 * 1024 * 1024)))


class DynoManager(Rollouts):
    """Owns every dyno on this machine; one instance per platform."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        options: ManagerOptions,
        *,
        platform_route: AppRoute | None = None,
        platform_hosts: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.options = options
        #: The API's own entry in the route table, reached at ``platform_hosts``.
        self.platform_route = platform_route
        self.platform_hosts = tuple(platform_hosts)
        #: app -> dyno name -> the dyno serving (or meant to serve) under that name.
        self.dynos: dict[str, dict[str, Running]] = {}
        self.rollouts: dict[str, asyncio.Task[None]] = {}
        #: app -> a release version whose rollout failed; not retried until a newer one.
        self.failed: dict[str, int] = {}
        self._draining: set[asyncio.Task[None]] = set()
        #: app -> the dynos a rollout is booting (not in ``dynos`` until cutover).
        self.booting: dict[str, dict[str, Running]] = {}
        self._routes: RouteTable | None = None

    # -- logging -------------------------------------------------------------------

    def log(self, app: str, dyno: str, message: str) -> None:
        """A platform line in the app's log: ``corral[web.1]: message``."""
        append_line(
            self.settings.logs_dir(app), "corral", LogLine(timestamp(), "corral", dyno, message)
        )

    # -- the loop ------------------------------------------------------------------

    def adopt(self) -> None:
        """Take over the dynos a previous run of the platform left running."""
        for row in self.store.dynos():
            process = None
            if row.pid is not None and row.pid_start_time is not None:
                candidate = dynos.DynoProcess(row.pid, row.pid_start_time)
                process = candidate if candidate.alive() else None
            running = Running(row, process)
            self.dynos.setdefault(row.app, {})[row.name] = running
            if process is None and row.state != "crashed":
                self._exited(running)
            elif process is not None:
                self.log(row.app, row.name, f"Adopted running process (pid {row.pid})")
        self._stop_orphaned_boots()
        self._fail_stale_pending()

    def _fail_stale_pending(self) -> None:
        # A pending release left by a platform that died mid-deploy would block config
        # changes forever; it is retried as a rollout only if still newest.
        for app in self.store.list_apps():
            for release in self.store.pending_releases(app.name):
                if app.name not in self.rollouts:
                    current = self.store.current_release(app.name)
                    if current is not None and release.version < current.version:
                        self.store.mark_release_failed(app.name, release.version)

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile every tick until ``stop`` is set; then leave the dynos running."""
        self.adopt()
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.tick)

    async def tick(self) -> None:
        """One reconcile pass over every app."""
        apps = {app.name: app for app in self.store.list_apps()}
        for name in list(self.dynos):
            if name not in apps:
                await self._remove_app(name)
        for app, action, target in self.store.take_dyno_requests():
            if app in apps:
                self._handle_request(app, action, target)
        for app in apps:
            if app in self.rollouts and self.rollouts[app].done():
                self.rollouts.pop(app).result()
            if app not in self.rollouts:
                await self._reconcile(app)
        self._check_memory(apps)
        self._write_routes(apps)

    async def _remove_app(self, app: str) -> None:
        task = self.rollouts.pop(app, None)
        if task:
            task.cancel()
        running = self.dynos.pop(app, {})
        await asyncio.gather(*(self._stop(r, grace=self.options.grace) for r in running.values()))
        for r in running.values():
            self.store.delete_dyno(app, r.row.name)

    async def _reconcile(self, app: str) -> None:
        current = self.store.current_release(app)
        pending = self.store.pending_releases(app)  # newest first
        target = pending[0] if pending else current
        if target is None:
            return
        running = self.dynos.setdefault(app, {})
        for r in list(running.values()):
            if r.row.state != "crashed" and r.exited():
                self._exited(r)
        behind = any(r.row.release_version != target.version for r in running.values())
        if (target.status == "pending" or behind) and self.failed.get(app) != target.version:
            self.rollouts[app] = asyncio.create_task(self._rollout(app, target, current))
            return
        self._converge(app, target, running)

    def _wanted(self, app: str, release: Release, first_deploy: bool) -> list[str]:
        quantities = {f.process_type: f.quantity for f in self.store.formation(app)}
        if first_deploy and "web" in release.process_types:
            quantities.setdefault("web", 1)
        names = []
        for process_type in release.process_types:
            if process_type in NOT_DYNOS:
                continue
            names += [f"{process_type}.{i}" for i in range(1, quantities.get(process_type, 0) + 1)]
        return names

    def _converge(self, app: str, release: Release, running: dict[str, Running]) -> None:
        wanted = set(self._wanted(app, release, first_deploy=False))
        now = time.time()
        for name in sorted(wanted - set(running)):
            running[name] = self._start(app, name, release)
        for name in sorted(set(running) - wanted):
            self._drain(running.pop(name))
        for name, r in list(running.items()):
            if r.row.state == "crashed" and (r.row.next_restart_at or 0) <= now:
                running[name] = self._start(app, name, release, restarts=r.row.restarts)
            elif r.row.state == "starting":
                self._check_boot(r)

    def _handle_request(self, app: str, action: str, target: str | None) -> None:
        """``ps:restart`` / ``ps:stop``: web restarts roll over with zero downtime."""
        running = self.dynos.get(app, {})
        chosen = [
            name
            for name in running
            if target is None or name == target or name.rsplit(".", 1)[0] == target
        ]
        current = self.store.current_release(app)
        rolling = (
            action == "restart"
            and target in (None, "web")
            and app not in self.rollouts
            and current is not None
            and any(name.startswith("web.") for name in chosen)
        )
        if rolling:
            self.log(app, "", f"Restarting web dynos of {current.name} with zero downtime")
            self.rollouts[app] = asyncio.create_task(self._rollout(app, current, current))
            chosen = [name for name in chosen if not name.startswith("web.")]
        verb = "Restarting" if action == "restart" else "Stopping"
        for name in chosen:
            self.log(app, name, f"{verb} (requested by ps:{action})")
            self._drain(running.pop(name))

    # -- single dynos ---------------------------------------------------------------

    def _spec(self, app: str, name: str, release: Release, port: int | None) -> dynos.DynoSpec:
        slug = load_slug(release.slug_path)
        env = process_environ(
            slug,
            base={
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": os.environ.get("HOME", "/"),
                "LANG": "C.UTF-8",
                "WEB_CONCURRENCY": str(web_concurrency(self.quota(self.store.get_app(app)))),
            },
            config=release.config,
            port=port,
            dyno=name,
            runtime_dir=self.settings.run_dir / "dynos" / app / name,
        )
        command = release.process_types[name.rsplit(".", 1)[0]]
        return dynos.DynoSpec(app, name, command, release.slug_path, env, port)

    def _start(
        self, app: str, name: str, release: Release, restarts: int = 0, record: bool = True
    ) -> Running:
        port = free_port() if name.startswith("web.") else None
        spec = self._spec(app, name, release, port)
        self.log(app, name, f"Starting process with command `{spec.command}`")
        process, popen = dynos.start(spec, self.settings.logs_dir(app), self.settings.run_dir)
        row = Dyno(
            app=app,
            name=name,
            process_type=spec.process_type,
            release_version=release.version,
            pid=process.pid,
            pid_start_time=process.started_at,
            port=port,
            state="starting" if port else "up",
            restarts=restarts,
            since=time.time(),
        )
        if record:
            self.store.upsert_dyno(row)
        if not port:
            self.log(app, name, "State changed from starting to up")
        return Running(row, process, popen)

    def _set_state(self, r: Running, state: str, **changes: object) -> None:
        if state != r.row.state:
            self.log(r.row.app, r.row.name, f"State changed from {r.row.state} to {state}")
        r.row = replace(r.row, state=state, since=time.time(), **changes)  # type: ignore[arg-type]
        self.store.upsert_dyno(r.row)

    def _exited(self, r: Running) -> None:
        status = None
        if r.popen is not None:
            r.popen.wait()
        if r.row.pid is not None:
            status = dynos.exit_status(self.settings.run_dir, r.row.app, r.row.name, r.row.pid)
        uptime = time.monotonic() - r.started
        crashes = self.options.policy.crashes_after(r.row.restarts, uptime)
        delay = self.options.policy.delay(crashes)
        if status is None:
            self.log(r.row.app, r.row.name, "Process exited (status unknown)")
        next_try = time.time() + delay
        self._set_state(r, "crashed", restarts=crashes, next_restart_at=next_try)
        if delay:
            self.log(r.row.app, r.row.name, f"Restarting in {delay:.0f}s (crash {crashes})")

    def _check_boot(self, r: Running) -> None:
        if time.monotonic() - r.started > self.options.boot_timeout:
            self.log(r.row.app, r.row.name, "Error R10 (Boot timeout): no response on $PORT")
            self._drain(r, grace=0)
            self._set_state(r, "crashed", restarts=r.row.restarts + 1, next_restart_at=time.time())
            return
        # the TCP check is cheap; run it without holding up the tick
        task = asyncio.create_task(self._probe(r))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _probe(self, r: Running) -> None:
        up = r.row.port and await dynos.healthy(r.row.port, None, timeout=0.5)
        if up and r.row.state == "starting" and not r.exited():
            self._set_state(r, "up")

    def _drain(self, r: Running, grace: float | None = None) -> None:
        """Stop ``r`` in the background (SIGTERM, grace, SIGKILL) and forget its row.

        A web dyno that was serving first leaves the route table: the SIGTERM waits until
        the router has reloaded it, so no request is sent to a closed listener.
        """
        settle = ROUTE_SETTLE if r.row.port and r.row.state == "up" else 0.0
        grace = self.options.grace if grace is None else grace
        task = asyncio.create_task(self._stop(r, grace, settle=settle))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _stop(self, r: Running, grace: float, forget: bool = True, settle: float = 0) -> None:
        if settle:
            self._write_routes({a.name: a for a in self.store.list_apps()})
            await asyncio.sleep(settle)
        if r.process is not None and not r.exited():
            self.log(r.row.app, r.row.name, "Stopping process with SIGTERM")
            await dynos.stop(r.process, grace, r.popen)
        elif r.popen is not None:
            r.popen.poll()
        current = {d.name: d for d in self.store.dynos(r.row.app)}.get(r.row.name)
        if forget and current is not None and current.pid == r.row.pid:
            self.store.delete_dyno(r.row.app, r.row.name)

    async def stop_all(self, grace: float) -> None:
        """Stop every dyno (a clean shutdown of the platform; ``kill -9`` leaves them)."""
        # taken before cancelling: a cancelled rollout forgets the dynos it was booting
        everything = [
            r for group in (self.dynos, self.booting) for running in group.values()
            for r in running.values()
        ]  # fmt: skip
        for task in self.rollouts.values():
            task.cancel()
        await asyncio.gather(*self.rollouts.values(), return_exceptions=True)
        await asyncio.gather(*(self._stop(r, grace) for r in everything))
        while self._draining:  # dynos already on their way out
            await asyncio.gather(*list(self._draining), return_exceptions=True)
        self.dynos.clear()
        self.booting.clear()

    # -- memory and routes ----------------------------------------------------------

    def quota(self, app: App | None) -> int:
        """Bytes of memory a dyno of ``app`` may use: its own quota, else the platform's."""
        if app is not None and app.memory_quota_mb:
            return app.memory_quota_mb << 20
        return self.options.memory_quota

    def _check_memory(self, apps: dict[str, App]) -> None:
        for name, running in self.dynos.items():
            quota = self.quota(apps.get(name))
            for r in list(running.values()):
                if r.process is None or r.row.state != "up":
                    continue
                used = r.process.memory()
                if used > 2 * quota:
                    self.log(
                        r.row.app,
                        r.row.name,
                        f"Error R15 (Memory quota vastly exceeded): {used >> 20}M, restarting",
                    )
                    self._drain(r, grace=self.options.grace)
                    self._set_state(r, "crashed", next_restart_at=time.time())
                elif used > quota and not r.memory_warned:
                    self.log(
                        r.row.app,
                        r.row.name,
                        f"Error R14 (Memory quota exceeded): {used >> 20}M of {quota >> 20}M",
                    )
                    r.memory_warned = True

    def _write_routes(self, apps: dict[str, App]) -> None:
        table = RouteTable(
            domain=self.options.domain,
            apps={
                name: AppRoute(
                    app=name,
                    backends=tuple(
                        Backend(r.row.name, "127.0.0.1", r.row.port)
                        for r in self.dynos.get(name, {}).values()
                        if r.row.state == "up" and r.row.port
                    ),
                    maintenance=app.maintenance,
                    crashed=any(
                        r.row.state == "crashed" for r in self.dynos.get(name, {}).values()
                    ),
                )
                for name, app in apps.items()
            },
            custom_domains={d.hostname: d.app for d in self.store.domains()},
        )
        if self.platform_route is not None:
            table.apps[self.platform_route.app] = self.platform_route
            for host in self.platform_hosts:
                table.custom_domains[host] = self.platform_route.app
        if table != self._routes:
            self.settings.routes_path.parent.mkdir(parents=True, exist_ok=True)
            save_route_table(table, self.settings.routes_path)
            self._routes = table
