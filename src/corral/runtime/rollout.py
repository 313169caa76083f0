"""A rollout: boot a release's web dynos beside the old ones and wait until they are healthy.

:func:`boot_release` is handed the narrow :class:`RolloutUnits` interface (start and stop
one unit) and returns a :class:`Booted` outcome; the supervisor then cuts over (or keeps
the old release serving). While it boots, the dynos it started are listed in a
:class:`BootingRecord`, so a platform that dies mid-rollout stops them when it comes back
instead of leaving orphans.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from corral.errors import UserError
from corral.files import atomic_write
from corral.runtime import dyno as dynos
from corral.runtime.units import Running

__all__ = ["BootPlan", "Booted", "BootingRecord", "RolloutUnits", "boot_release", "health_path"]


class RolloutUnits(Protocol):
    """What a rollout needs of the supervisor's units: start one, stop one."""

    def start(self, spec: dynos.DynoSpec, version: int, *, record: bool) -> Running:
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


def health_path(slug_path: Path) -> str | None:
    """The HTTP path the app declares for health checks in ``app.json``, if any."""
    try:
        data = json.loads((slug_path / "app.json").read_text())
        path = data.get("healthcheck", {}).get("path")
    except (OSError, ValueError, AttributeError):
        return None
    return path if isinstance(path, str) and path.startswith("/") else None


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
    """What to boot: the web dynos of one release, and how to know they are healthy."""

    app: str
    version: int
    web: tuple[str, ...]
    spec_for: Callable[[str], dynos.DynoSpec]
    #: ``app.json``'s ``healthcheck.path``; None checks that the port accepts.
    health: str | None
    boot_timeout: float


async def boot_release(units: RolloutUnits, record: BootingRecord, plan: BootPlan) -> Booted:
    """Boot ``plan``'s dynos and wait until each passes its health check.

    On any failure (or cancellation) the dynos it started are stopped again; on success
    they are returned running, not yet in the store, for the caller to cut over to.
    """
    fresh: dict[str, Running] = {}
    try:
        booted = await _boot(units, record, plan, fresh)
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
        for name in plan.web:
            fresh[name] = units.start(plan.spec_for(name), plan.version, record=False)
            record.write(plan.app, fresh)
    except (UserError, OSError) as exc:
        return Booted(problem=f"could not start its dynos ({exc})")
    problem, culprits = await _await_healthy(fresh, plan.health, plan.boot_timeout)
    if problem:
        return Booted(problem=problem, culprits=culprits)
    return Booted(fresh=fresh)


async def _give_up(
    units: RolloutUnits, record: BootingRecord, app: str, fresh: dict[str, Running]
) -> None:
    await asyncio.gather(*(units.stop(r, grace=5) for r in fresh.values()))
    record.clear(app)


async def _await_healthy(
    fresh: dict[str, Running], path: str | None, boot_timeout: float
) -> tuple[str | None, tuple[str, ...]]:
    deadline = time.monotonic() + boot_timeout
    pending = list(fresh.values())
    while pending:
        for r in list(pending):
            if r.exited():
                return f"{r.row.name} exited while booting", tuple(fresh)
            if r.row.port and await dynos.healthy(r.row.port, path, timeout=1):
                pending.remove(r)
        if pending and time.monotonic() > deadline:
            names = ", ".join(r.row.name for r in pending)
            return (
                f"{names} did not pass the health check within {boot_timeout:.0f}s",
                tuple(fresh),
            )
        if pending:
            await asyncio.sleep(0.05)
    return None, ()
