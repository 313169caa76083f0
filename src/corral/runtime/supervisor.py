"""The supervisor: converge the machine to what the store asks for, and keep it there.

One reconcile loop for every unit: the dynos of each app's formation and the platform's
own services (:mod:`corral.runtime.services`), all started, adopted, restarted with
backoff and logged by the same :class:`~corral.runtime.units.Units`. A release the dynos
do not run yet (a pending deploy, a config change, a rollback) and a ``ps:restart`` are
rolled out with zero downtime (:mod:`corral.runtime.rollout`): the new dynos, web and
workers, boot beside the old ones and must pass their health checks before the routes
switch to them; then the old ones are drained. If one fails, the release is marked
failed and the old dynos keep running. The store is read (:mod:`corral.runtime.view`)
again only after a commit, and at once then.
"""

from __future__ import annotations

import asyncio
import signal
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from corral.builder.slug import remove_renamed_slugs
from corral.config import Settings
from corral.router.table import RouteTable, save_route_table
from corral.runtime import dyno as dynos
from corral.runtime import oneoff, plan
from corral.runtime.cgroups import Hierarchy, base_for_home
from corral.runtime.firewall import Firewall
from corral.runtime.logs import recent
from corral.runtime.restart import RestartPolicy
from corral.runtime.rollout import Booted, BootingRecord, BootPlan, boot_release, health_check
from corral.runtime.services import Services, ServiceSpec
from corral.runtime.specs import DynoSpecs
from corral.runtime.units import Running, Units
from corral.runtime.view import StoreView
from corral.store import WAKE_SOCKET, Store
from corral.store.models import App, Domain, Release
from corral.store.names import PLATFORM_APP

__all__ = ["Supervisor", "SupervisorOptions"]


@dataclass(frozen=True)
class SupervisorOptions:
    """How patient and how strict the supervisor is."""

    boot_timeout: float = 60.0
    grace: float = 30.0
    memory_quota: int = 512 * 1024 * 1024
    tick: float = 0.25
    policy: RestartPolicy = field(default_factory=RestartPolicy)


class Supervisor:
    """Owns every unit on this machine: app dynos and platform services; one per platform."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        options: SupervisorOptions,
        *,
        services: Sequence[ServiceSpec] = (),
        platform_hosts: Iterable[str] = (),
        cgroups: Hierarchy | None = None,
        firewall: Firewall | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.view = StoreView(store)
        self.options = options
        self.units = Units(
            settings, store, grace=options.grace, policy=options.policy,
            routes_changed=self.write_routes, cgroups=cgroups,
        )  # fmt: skip
        self.services = Services(self.units, services, options.boot_timeout)
        self.specs = DynoSpecs(
            settings, options.memory_quota, kernel_limits=cgroups is not None,
            log=lambda app, message: self.units.log(app, "", message), firewall=firewall,
        )  # fmt: skip
        #: Host names that reach the API (the ``api`` service) rather than an app.
        self.platform_hosts = tuple(platform_hosts)
        #: app -> dyno name -> the dyno serving (or meant to serve) under that name.
        self.dynos: dict[str, dict[str, Running]] = {}
        self.rollouts: dict[str, asyncio.Task[None]] = {}
        #: app -> a release version whose rollout failed; not retried until a newer one.
        self.failed: dict[str, int] = {}
        #: app -> whether its release has a ``web`` type (the router's page says so if not).
        self.has_web: dict[str, bool] = {}
        self.booting = BootingRecord(settings.run_dir)
        self._routes: RouteTable | None = None
        self._adopted = False

    # -- the loop ------------------------------------------------------------------

    def adopt(self) -> None:
        """Take over the units a previous run of the platform left running (once)."""
        if self._adopted:
            return
        rows = self.store.dynos()
        self._adopted = True
        self.services.adopt(
            (row for row in rows if row.app == PLATFORM_APP),
            legacy_state=self.settings.run_dir / "platform.json",
        )
        for row in rows:
            if row.app != PLATFORM_APP:
                self.dynos.setdefault(row.app, {})[row.name] = self.units.adopt(row)
        for app, orphan in self.booting.take_orphans():
            if orphan.alive():
                message = f"Stopping pid {orphan.pid}, left booting by an interrupted rollout"
                self.units.log(app, "", message)
                dynos.signal_group(orphan, signal.SIGKILL)
        # left by a platform that died mid-deploy, it would block config changes forever
        self.units.writes.defer("superseded", self.store.fail_superseded_pending)
        self.specs.sweep(app.name for app in self.store.list_apps())

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile each tick until ``stop`` is set (a busy store only delays one tick), and
        at once when something is committed to the store (a release, a scale, a restart)."""
        with self.view.listening(self.settings.run_dir / WAKE_SOCKET):
            while not stop.is_set():
                try:
                    wait = await self.units.writes.guarded(self.tick(), self.options.tick)
                except Exception as exc:  # one failed pass never leaves the dynos unsupervised
                    traceback.print_exc()  # the whole of it in the server's output (journal)
                    message = f"A supervisor pass failed ({exc!r}); trying again"
                    self.units.log(PLATFORM_APP, "supervisor", message)
                    self.view.forget()
                    wait = 1.0
                await self.view.pause(wait, stop)

    async def tick(self) -> None:
        """One reconcile pass over the platform's services and every app."""
        self.adopt()
        changed = self.view.refresh()  # otherwise the store's rows are those read last time
        self.services.tick()
        apps = self.view.apps
        for old, new in self._take(self.store.take_app_renames, changed):
            await self._renamed(old, new, apps)
        for name in list(self.dynos):
            if name not in apps:
                await self._remove_app(name)
        for app, action, target in self._take(self.store.take_dyno_requests, changed):
            if app in apps:
                self._handle_request(app, action, target)
        for app in apps:
            if app in self.rollouts and self.rollouts[app].done():
                self.rollouts.pop(app).result()
                self.view.drop(app)  # its verdict was committed since the view read it
            if app not in self.rollouts:
                self._reconcile(app)
        quota = self.specs.quota
        await self.units.check_memory(
            [(r, quota(apps.get(a))) for a, rs in self.dynos.items() for r in rs.values()]
        )
        self._write_routes(apps, self.view.domains())

    def _take(self, take: Callable[[], list[Any]], changed: bool) -> list[Any]:
        """What ``take`` moves out of the store if anything was committed (busy: next tick)."""
        if not changed:  # nothing to take; the writes the store refused before are made
            self.units.writes.flush()
            return []
        taken = self.units.writes.attempt(take)
        if taken is None:
            self.view.forget()
        return taken or []

    async def _remove_app(self, app: str) -> None:
        task = self.rollouts.pop(app, None)
        if task:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        running = self.dynos.pop(app, {})
        await asyncio.gather(*(self.units.stop(r, self.options.grace) for r in running.values()))
        for r in running.values():
            self.units.forget(r.row, whoever=True)
        self.units.remove_groups(f"{base_for_home(self.settings.home)}/{app}")
        self.specs.forget(app, destroyed=True)

    async def _renamed(self, old: str, new: str, apps: dict[str, App]) -> None:
        """``apps:rename``: the dynos serving ``old`` serve ``new`` now (the store's rows are
        renamed already), then roll onto the slugs' new paths with zero downtime."""
        task = self.rollouts.pop(old, None)
        if task:  # a restart in flight: it stops what it booted; the roll below redoes it
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        running = self.dynos.pop(old, {})
        self.specs.forget(old, destroyed=False)  # the API gave its user to the new name
        if old in self.failed:
            self.failed[new] = self.failed.pop(old)
        self.has_web.pop(old, None)
        if new not in apps:
            self.dynos[old] = running  # destroyed since: stopped as any removed app
            return
        for r in running.values():
            r.row = replace(r.row, app=new)
        self.dynos[new] = running
        self.write_routes()
        self.units.log(new, "", f"Renamed from {old}")
        current = self.store.current_release(new)
        if running and current is not None:
            self.units.log(new, "", "Restarting all dynos from their new path with zero downtime")
            work = self._roll_renamed(old, new, current, set(map(id, running.values())))
            self.rollouts[new] = asyncio.create_task(work)
        else:
            self._unlink_old_slugs(old, new)

    async def _roll_renamed(self, old: str, new: str, release: Release, before: set[int]) -> None:
        await self._rollout(new, release, first_deploy=False, only=None)
        await self.units.drained()
        if not any(id(r) in before for r in self.dynos.get(new, {}).values()):
            self._unlink_old_slugs(old, new)

    def _unlink_old_slugs(self, old: str, new: str) -> None:
        # no dyno runs from the old links any more; another app may own the name by now
        remove_renamed_slugs(self.settings.slugs_dir(old), self.settings.slugs_dir(new))

    def _reconcile(self, app: str) -> None:
        current = self.view.current_release(app)
        pending = self.view.pending_releases(app)  # newest first
        target = pending[0] if pending else current
        self.has_web[app] = target is not None and "web" in target.process_types
        if target is None or not self.specs.ready(app):
            return
        running = self.dynos.setdefault(app, {})
        for r in list(running.values()):
            if r.row.state != "crashed" and r.exited():
                self.units.exited(r)
        if plan.needs_rollout(
            target_version=target.version,
            target_pending=target.status == "pending",
            running_versions=[r.row.release_version for r in running.values()],
            failed_version=self.failed.get(app),
        ):
            self._start_rollout(app, target, first_deploy=current is None)
            return
        self._converge(app, target, running)

    def _wanted(self, app: str, release: Release, first_deploy: bool) -> list[str]:
        quantities = {f.process_type: f.quantity for f in self.view.formation(app)}
        return plan.wanted_dynos(release.process_types, quantities, first_deploy=first_deploy)

    def _converge(self, app: str, release: Release, running: dict[str, Running]) -> None:
        wanted = set(self._wanted(app, release, first_deploy=False))
        now = time.time()
        for name in sorted(wanted - set(running)):
            running[name] = self._start(app, name, release)
        for name in sorted(set(running) - wanted):
            self.units.drain(running.pop(name))
        for name, r in list(running.items()):
            due = plan.due_for_restart(r.row.next_restart_at, now)
            if r.row.state == "crashed" and due and r.exited():
                running[name] = self._start(app, name, release, restarts=r.row.restarts)
            elif r.row.state == "starting":
                self.units.check_boot(r, self.options.boot_timeout)

    def _handle_request(self, app: str, action: str, target: str | None) -> None:
        """``ps:restart`` / ``ps:stop``: web restarts roll over with zero downtime."""
        running = self.dynos.get(app, {})
        chosen = [
            name
            for name in running
            if target is None or name == target or plan.process_type(name) == target
        ]
        current = self.view.current_release(app)
        if action == "restart" and chosen and current is not None and app not in self.rollouts:
            # dynos behind the current release (its rollout failed) all roll onto it again
            behind = any(r.row.release_version != current.version for r in running.values())
            only = None if behind else tuple(chosen)
            which = target or "all dynos"
            self.units.log(app, "", f"Restarting {which} of {current.name} with zero downtime")
            self._start_rollout(app, current, first_deploy=False, only=only)
            return
        verb = "Restarting" if action == "restart" else "Stopping"
        for name in chosen:
            self.units.log(app, name, f"{verb} (requested by ps:{action})")
            self.units.drain(running.pop(name))

    # -- rollouts -------------------------------------------------------------------

    def _start_rollout(self, app: str, release: Release, *, first_deploy: bool, only=None) -> None:
        """Roll ``release`` out: all its dynos, or with ``only`` just those (a restart)."""
        self.rollouts[app] = asyncio.create_task(self._rollout(app, release, first_deploy, only))

    async def _rollout(
        self, app: str, release: Release, first_deploy: bool, only: tuple[str, ...] | None
    ) -> None:
        """Boot ``release``'s dynos beside the old ones, switch when healthy, drain the old."""
        boot = BootPlan(
            app=app,
            version=release.version,
            names=only if only is not None else tuple(self._wanted(app, release, first_deploy)),
            spec_for=lambda name: self.specs.spec(self.store.get_app(app), name, release),
            health=lambda: health_check(release.slug_path),
            boot_timeout=self.options.boot_timeout,
        )
        booted = await boot_release(self.units, self.booting, boot)
        if booted.problem is not None:
            self._fail(app, release, booted)
            return
        old = self.dynos.get(app, {})
        # a restart replaces the dynos it booted; a new release replaces them all
        retired = old if only is None else {n: old[n] for n in booted.fresh if n in old}
        kept = {n: r for n, r in old.items() if n not in retired}
        self.dynos[app] = {**kept, **booted.fresh}
        for r in booted.fresh.values():
            self.units.set_state(r, "up")
        # In the store now: a platform that dies from here on must adopt them, not stop them.
        self.booting.clear(app)
        self.write_routes()
        for r in retired.values():
            self.units.drain(r)
        self.failed.pop(app, None)
        # the verdict last: a deploy prints "live" once the dynos that served are recorded
        if release.status == "pending":  # once the store takes it, and the rows before it
            await self.units.writes.until_done(
                self.store.mark_release_succeeded, app, release.version
            )
        self.units.log(app, "", f"Release {release.name} is live")

    def _fail(self, app: str, release: Release, booted: Booted) -> None:
        self.failed[app] = release.version
        problem = f"{booted.problem}; the previous release keeps serving"
        self.units.log(app, "", f"Release {release.name} failed: {problem}")
        # the new dynos' own lines: the old ones have the same names but wrote before the rollout
        lines = [
            line
            for line in recent(self.settings.logs_dir(app), 500, source="app")
            if line.dyno in booted.culprits and line.timestamp >= booted.since
        ]
        excerpt = plan.excerpt(lines, text=lambda line: line.message)
        for line in excerpt:
            self.units.log(app, line.dyno, f"  {line.message}")
        if release.status == "pending":
            # the verdict and its reason in one write: deploys wait on the store, not the log
            self.units.writes.defer(
                ("verdict", app),
                self.store.mark_release_failed,
                app,
                release.version,
                reason=booted.problem,
                excerpt=[f"{line.dyno}: {line.message}" for line in excerpt],
            )

    # -- single dynos ---------------------------------------------------------------

    def _start(self, app: str, name: str, release: Release, restarts: int = 0) -> Running:
        spec = self.specs.spec(self.store.get_app(app), name, release)
        return self.units.start(spec, release.version, restarts=restarts)

    async def stop_all(self, grace: float) -> None:
        """Stop every dyno (a clean shutdown of the platform; ``kill -9`` leaves them)."""
        for task in self.rollouts.values():
            task.cancel()  # a cancelled rollout stops the dynos it was booting itself
        await asyncio.gather(*self.rollouts.values(), return_exceptions=True)
        # after them: one that ended first has put its dynos here
        everything = [r for running in self.dynos.values() for r in running.values()]
        stopped = await asyncio.gather(
            *(self.units.stop(r, grace) for r in everything), oneoff.stop_all(self.store, grace),
            return_exceptions=True,  # one that fails never leaves the others running
        )  # fmt: skip
        for failure in (f for f in stopped if isinstance(f, BaseException)):
            traceback.print_exception(failure)
        await self.units.drained()  # dynos already on their way out
        self.units.remove_groups(base_for_home(self.settings.home))
        self.specs.unguard()  # no dyno is left for the firewall's rules to guard
        self.dynos.clear()
        self.rollouts.clear()

    async def stop_services(self, grace: float) -> None:
        """Stop the platform's own services, last of all in a clean shutdown."""
        await self.services.stop_all(grace)

    def write_routes(self) -> None:
        """Write the route table now, from the store's apps and the units that are up."""
        self._write_routes({a.name: a for a in self.store.list_apps()}, self.store.domains())

    def _write_routes(self, apps: dict[str, App], domains: list[Domain]) -> None:
        api = self.services.running.get("api")
        route = plan.PlatformRoute(
            api.row if api else None, self.services.port("api"), self.platform_hosts,
            self.services.port("streams", up=True),
        )  # fmt: skip
        table = plan.route_table(
            self.settings.domain,
            {name: (app.maintenance, self.has_web.get(name, True)) for name, app in apps.items()},
            {name: [r.row for r in running.values()] for name, running in self.dynos.items()},
            {d.hostname: d.app for d in domains},
            api=route if "api" in self.services.specs else None,
        )
        if table != self._routes:
            self.settings.routes_path.parent.mkdir(parents=True, exist_ok=True)
            save_route_table(table, self.settings.routes_path)
            self._routes = table
            live = (r.row.port for running in self.dynos.values() for r in running.values())
            platform = (self.services.port(name) for name in ("api", "streams"))
            self.specs.guard((p for p in live if p), (p for p in platform if p))
