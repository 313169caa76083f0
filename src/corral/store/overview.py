"""A summary of every app in one read, for the dashboard's overview page."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from corral.store._db import Database
from corral.store.apps import app_from_row
from corral.store.errors import NotFound
from corral.store.models import App, Release
from corral.store.releases import release_from_row


@dataclass(frozen=True)
class AppSummary:
    """An app with its current release, its dynos by type and state, and whether it deploys."""

    app: App
    release: Release | None
    #: process type -> dyno state -> how many dynos are in it
    dynos: dict[str, Counter[str]] = field(default_factory=dict)
    #: a release is waiting for its rollout, or a build is running
    deploying: bool = False

    @property
    def status(self) -> str:
        """``deploying``, ``crashed``, ``up`` or ``idle`` (no dynos)."""
        states: Counter[str] = Counter()
        for by_state in self.dynos.values():
            states.update(by_state)
        if self.deploying or states["starting"]:
            return "deploying"
        if states["crashed"]:
            return "crashed"
        if states["up"]:
            return "up"
        return "idle"


class OverviewMixin(Database):
    """Data access for summaries spanning apps, releases, builds and dynos."""

    def app_summaries(self) -> list[AppSummary]:
        """Every app, by name, summarised in a single read transaction."""
        return self._summaries(None)

    def app_summary(self, app: str) -> AppSummary:
        """One app's summary, or :class:`NotFound`."""
        for summary in self._summaries(app):
            return summary
        raise NotFound(f"No app named {app!r}; run `corral apps` to list your apps.")

    def _summaries(self, only: str | None) -> list[AppSummary]:
        # ``only`` narrows every query to one app; None reads them all
        scope = {"only": only}
        with self._read() as conn:
            apps = [
                app_from_row(row)
                for row in conn.execute(
                    "SELECT * FROM apps WHERE :only IS NULL OR name = :only ORDER BY name", scope
                )
            ]
            releases = {
                row["app"]: release_from_row(row)
                for row in conn.execute(
                    "SELECT releases.* FROM releases JOIN apps"
                    " ON apps.name = releases.app AND apps.current_release = releases.version"
                    " WHERE :only IS NULL OR apps.name = :only",
                    scope,
                )
            }
            busy = {
                row[0]
                for row in conn.execute(
                    "SELECT app FROM releases WHERE status = 'pending'"
                    " AND (:only IS NULL OR app = :only)"
                    " UNION SELECT app FROM builds WHERE status IN ('pending', 'running')"
                    " AND (:only IS NULL OR app = :only)",
                    scope,
                )
            }
            dynos: dict[str, dict[str, Counter[str]]] = {}
            for row in conn.execute(
                "SELECT app, process_type, state, COUNT(*) FROM dynos"
                " WHERE :only IS NULL OR app = :only GROUP BY app, process_type, state",
                scope,
            ):
                app, process_type, state, count = row
                dynos.setdefault(app, {}).setdefault(process_type, Counter())[state] = count
        return [
            AppSummary(
                app=app,
                release=releases.get(app.name),
                dynos=dynos.get(app.name, {}),
                deploying=app.name in busy,
            )
            for app in apps
        ]
