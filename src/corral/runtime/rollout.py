"""A rollout: boot a release's dynos beside the old ones and wait until they are healthy.

A web dyno is healthy once it answers HTTP; a dyno without HTTP (a worker, a clock) once
it is still running a settle time after it started (``healthcheck.settle`` in
``app.json``, :data:`~corral.runtime.plan.DEFAULT_SETTLE` by default).
:func:`boot_release` is handed the narrow :class:`RolloutUnits` interface (start and stop
one unit) and returns a :class:`Booted` outcome; the supervisor then cuts over (or keeps
the old release serving: its dynos, workers too, run until the cutover). While it boots,
the dynos it started are listed in a :class:`BootingRecord`, so a platform that dies
mid-rollout stops them when it comes back instead of leaving orphans.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from corral.errors import UserError
from corral.files import atomic_write
from corral.logfiles import timestamp
from corral.runtime import dyno as dynos
from corral.runtime import plan as rules
from corral.runtime.units import Running

__all__ = [
    "BootPlan",
    "Booted",
    "BootingRecord",
    "HealthCheck",
    "RolloutUnits",
    "boot_release",
    "health_check",
]

#: Seconds between health checks of a booting dyno: a refused connection costs next to
#: nothing, and each step is time a deploy waits after the app is ready.
PROBE_INTERVAL = 0.02


class RolloutUnits(Protocol):
    """What a rollout needs of the supervisor's units: start one, stop one."""

    def start(
        self, spec: dynos.DynoSpec, version: int, *, record: bool, health_checked: bool
    ) -> Running:
        """Start ``spec``; with ``record`` off its row stays out of the store."""
        ...

    async def stop(self, r: Running, grace: float) -> None:
        """Stop ``r`` and forget its row."""
        ...


@dataclass(frozen=True)
class Booted:
    """How booting a release went: the healthy dynos, or the problem and whose it was."""

    fresh: dict[str, Running] = field(default_factory=dict)
    problem: str | None = None
    #: The dynos the problem is about, whose own log lines explain it.
    culprits: tuple[str, ...] = ()
    #: When the rollout began (a log timestamp): the culprits' lines from before it are
    #: the old dynos' of the same names.
    since: str = ""


@dataclass(frozen=True)
class HealthCheck:
    """How a new dyno proves it is healthy: ``app.json``'s ``healthcheck`` object."""

    #: ``healthcheck.path``, expecting 2xx/3xx; None checks ``/`` below 500.
    path: str | None = None
    #: ``healthcheck.settle``: seconds a dyno without HTTP must keep running.
    settle: float = rules.DEFAULT_SETTLE


def health_check(slug_path: Path) -> HealthCheck:
    """The health check the app declares in ``app.json`` (the defaults when it declares none).

    A settle time that is not a number of seconds is a UserError saying what to write.
    """
    try:
        declared = json.loads((slug_path / "app.json").read_text()).get("healthcheck", {})
        path, settle = declared.get("path"), declared.get("settle")
    except (OSError, ValueError, AttributeError):
        return HealthCheck()
    try:
        seconds = rules.settle_time(settle)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return HealthCheck(path if isinstance(path, str) and path.startswith("/") else None, seconds)


class BootingRecord:
    """``run/booting/<app>.json``: the dynos a rollout is booting, outside the store."""

    def __init__(self, run_dir: Path) -> None:
        self.directory = run_dir / "booting"

    def path(self, app: str) -> Path:
        """The file that lists what ``app``'s rollout is booting."""
        return self.directory / f"{app}.json"

    def write(self, app: str, booting: dict[str, Running]) -> None:
        """List ``booting`` as the dynos ``app``'s rollout has started so far."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entries = [
            {"pid": r.process.pid, "started_at": r.process.started_at}
            for r in booting.values()
            if r.process is not None
        ]
        atomic_write(self.path(app), json.dumps(entries))

    def clear(self, app: str) -> None:
        """The rollout has cut over (its dynos are in the store now) or given up."""
        self.path(app).unlink(missing_ok=True)

    def take_orphans(self) -> Iterator[tuple[str, dynos.DynoProcess]]:
        """Every dyno left listed by a platform that died mid-rollout, clearing the lists."""
        for path in sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []:
            try:
                entries = json.loads(path.read_text())
            except ValueError:
                entries = []
            for entry in entries:
                yield path.stem, dynos.DynoProcess(entry["pid"], entry["started_at"])
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class BootPlan:
    """What to boot: dynos of one release (web and others), and how to know they are healthy."""

    app: str
    version: int
    #: The dynos to boot: every one the release wants, or those a restart names.
    names: tuple[str, ...]
    spec_for: Callable[[str], dynos.DynoSpec]
    #: Read from the slug when the rollout starts, so a bad ``app.json`` fails the release.
    health: Callable[[], HealthCheck]
    boot_timeout: float


async def boot_release(units: RolloutUnits, record: BootingRecord, plan: BootPlan) -> Booted:
    """Boot ``plan``'s dynos and wait until each passes its health check.

    On any failure (or cancellation) the dynos it started are stopped again; on success
    they are returned running, not yet in the store, for the caller to cut over to.
    """
    fresh: dict[str, Running] = {}
    since = timestamp()
    try:
        booted = replace(await _boot(units, record, plan, fresh), since=since)
    except (Exception, asyncio.CancelledError):  # not GeneratorExit: a loop torn down
        await _give_up(units, record, plan.app, fresh)
        raise
    if booted.problem is not None:
        await _give_up(units, record, plan.app, fresh)
    return booted


async def _boot(
    units: RolloutUnits, record: BootingRecord, plan: BootPlan, fresh: dict[str, Running]
) -> Booted:
    try:
        check = plan.health()
    except UserError as exc:
        return Booted(problem=exc.message)
    try:
        for name in plan.names:
            spec = plan.spec_for(name)
            fresh[name] = units.start(spec, plan.version, record=False, health_checked=True)
            record.write(plan.app, fresh)
    except (UserError, OSError) as exc:
        return Booted(problem=f"could not start its dynos ({exc})")
    problem, culprits = await _await_healthy(fresh, check, plan.boot_timeout)
    if problem:
        return Booted(problem=problem, culprits=culprits)
    return Booted(fresh=fresh)


async def _give_up(
    units: RolloutUnits, record: BootingRecord, app: str, fresh: dict[str, Running]
) -> None:
    await asyncio.gather(*(units.stop(r, grace=5) for r in fresh.values()))
    record.clear(app)


async def _await_healthy(
    fresh: dict[str, Running], check: HealthCheck, boot_timeout: float
) -> tuple[str | None, tuple[str, ...]]:
    """Wait until every dyno is healthy; else the problem and the dynos it is about.

    A dyno that has passed its check must still be running when the last one passes:
    a worker that exits after its settle time, while a web dyno is still booting, would
    otherwise be cut over to as if it were up.
    """
    deadline = time.monotonic() + boot_timeout
    pending = list(fresh.values())
    while True:
        for r in fresh.values():
            if r.exited():
                return _exited(r, check.settle), (r.row.name,)
        for r in list(pending):
            if r.row.port is None:
                ok = rules.settled(time.monotonic() - r.started, check.settle)
            else:
                ok = await dynos.healthy(r.row.port, check.path, timeout=1)
            if ok:
                pending.remove(r)
        if not pending:
            return None, ()
        if time.monotonic() > deadline:
            names = ", ".join(r.row.name for r in pending)
            problem = f"{names} did not pass the health check within {boot_timeout:.0f}s"
            return problem, tuple(r.row.name for r in pending)
        await asyncio.sleep(PROBE_INTERVAL)


def _exited(r: Running, settle: float) -> str:
    if r.row.port is not None:
        return f"{r.row.name} exited while booting"
    ran = time.monotonic() - r.started
    return (
        f"{r.row.name} exited {ran:.1f}s after starting; a dyno without HTTP must keep "
        f"running for {settle:g}s"
    )
