"""Rollouts: boot a release's web dynos beside the old ones, switch when healthy, drain.

:class:`Rollouts` is a part of :class:`corral.runtime.dyno_manager.DynoManager`, kept in
its own module: the zero-downtime cutover, its failure path, and the record of dynos a
rollout is booting (so a platform that dies mid-rollout leaves no orphans behind).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from corral.errors import UserError
from corral.runtime import dyno as dynos
from corral.runtime.logs import recent
from corral.store.models import Release

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.runtime.dyno_manager import Running
    from corral.store import Store


def health_path(slug_path: Path) -> str | None:
    """The HTTP path the app declares for health checks in ``app.json``, if any."""
    try:
        data = json.loads((slug_path / "app.json").read_text())
        path = data.get("healthcheck", {}).get("path")
    except (OSError, ValueError, AttributeError):
        return None
    return path if isinstance(path, str) and path.startswith("/") else None


class Rollouts:
    """The rollout half of the dyno manager (mixed into :class:`DynoManager`)."""

    # Set by DynoManager.__init__; declared here for what the methods below rely on.
    settings: Settings
    store: Store
    dynos: dict[str, dict[str, Running]]
    booting: dict[str, dict[str, Running]]
    failed: dict[str, int]

    async def _rollout(self, app: str, release: Release, current: Release | None) -> None:
        """Boot ``release``'s web dynos beside the old ones, switch when healthy, drain old."""
        wanted = self._wanted(app, release, first_deploy=current is None)
        web = [name for name in wanted if name.startswith("web.")]
        fresh: dict[str, Running] = {}
        self.booting[app] = fresh
        try:
            await self._boot_and_switch(app, release, web, fresh)
        finally:
            self.booting.pop(app, None)
            self._booting_file(app).unlink(missing_ok=True)

    def _booting_file(self, app: str) -> Path:
        """Where a rollout lists the dynos it is booting, for a manager that outlives it."""
        return self.settings.run_dir / "booting" / f"{app}.json"

    def _record_booting(self, app: str, fresh: dict[str, Running]) -> None:
        path = self._booting_file(app)
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = [
            {"pid": r.process.pid, "started_at": r.process.started_at}
            for r in fresh.values()
            if r.process is not None
        ]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries))
        os.replace(tmp, path)

    def _stop_orphaned_boots(self) -> None:
        """Stop dynos a rollout was booting when the platform died; the rollout runs again."""
        directory = self.settings.run_dir / "booting"
        for path in directory.glob("*.json") if directory.is_dir() else []:
            try:
                entries = json.loads(path.read_text())
            except ValueError:
                entries = []
            for entry in entries:
                orphan = dynos.DynoProcess(entry["pid"], entry["started_at"])
                if orphan.alive():
                    self.log(
                        path.stem,
                        "",
                        f"Stopping pid {orphan.pid}, left booting by an interrupted rollout",
                    )
                    dynos.signal_group(orphan, signal.SIGKILL)
            path.unlink(missing_ok=True)

    async def _boot_and_switch(
        self, app: str, release: Release, web: list[str], fresh: dict[str, Running]
    ) -> None:
        path = health_path(release.slug_path)
        try:
            # Not in the store yet: the old dynos keep their names (and rows) until cutover.
            for name in web:
                fresh[name] = self._start(app, name, release, record=False)
                self._record_booting(app, fresh)
        except (UserError, OSError) as exc:
            await asyncio.gather(*(self._stop(r, grace=5) for r in fresh.values()))
            self._fail(app, release, [], f"could not start its dynos ({exc})")
            return
        problem = await self._await_healthy(fresh.values(), path)
        if problem:
            await asyncio.gather(*(self._stop(r, grace=5) for r in fresh.values()))
            self._fail(app, release, list(fresh), problem)
            return
        if release.status == "pending":
            self.store.mark_release_succeeded(app, release.version)
        old = self.dynos.get(app, {})
        self.dynos[app] = fresh
        for r in fresh.values():
            self._set_state(r, "up")
        # In the store now: a platform that dies from here on must adopt them, not stop them.
        self.booting.pop(app, None)
        self._booting_file(app).unlink(missing_ok=True)
        self._write_routes({a.name: a for a in self.store.list_apps()})
        for r in old.values():
            self._drain(r)
        self.failed.pop(app, None)
        self.log(app, "", f"Release {release.name} is live")

    async def _await_healthy(self, fresh: Iterable[Running], path: str | None) -> str | None:
        deadline = time.monotonic() + self.options.boot_timeout
        pending = list(fresh)
        while pending:
            for r in list(pending):
                if r.exited():
                    return f"{r.row.name} exited while booting"
                if r.row.port and await dynos.healthy(r.row.port, path, timeout=1):
                    pending.remove(r)
            if pending and time.monotonic() > deadline:
                names = ", ".join(r.row.name for r in pending)
                return (
                    f"{names} did not pass the health check within {self.options.boot_timeout:.0f}s"
                )
            if pending:
                await asyncio.sleep(0.05)
        return None

    def _fail(self, app: str, release: Release, names: list[str], problem: str) -> None:
        self.failed[app] = release.version
        self.log(
            app, "", f"Release {release.name} failed: {problem}; the previous release keeps serving"
        )
        # the new dynos' own lines: the old ones have the same names but wrote before the release
        since = datetime.fromtimestamp(release.created_at, UTC).isoformat(timespec="microseconds")
        recent_lines = recent(self.settings.logs_dir(app), 10, source="app")
        excerpt = [line for line in recent_lines if line.dyno in names and line.timestamp >= since]
        for line in excerpt:
            self.log(app, line.dyno, f"  {line.message}")
        if release.status == "pending":
            # the verdict and its reason in one write: deploys wait on the store, not the log
            self.store.mark_release_failed(
                app,
                release.version,
                reason=problem,
                excerpt=[f"{line.dyno}: {line.message}" for line in excerpt],
            )
