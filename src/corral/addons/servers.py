"""The add-on servers the supervisor keeps running, as platform services: the PostgreSQL
cluster once an add-on has made it, each Redis add-on's own server, and the ``backups``
service while any backup schedule exists."""

from __future__ import annotations

import os
import sys

from corral.addons import redis, schedule
from corral.addons.cluster import Cluster
from corral.config import Settings
from corral.runtime.services import ServiceSpec

__all__ = ["runs_as_others", "service_specs"]


def service_specs(settings: Settings) -> list[ServiceSpec]:
    """What runs now: asked again at every tick of the supervisor (a few file checks)."""
    cluster = Cluster(settings)
    return [
        *([cluster.service()] if cluster.initialised() else []),
        *redis.service_specs(settings),
        *([_backups(settings)] if schedule.scheduled(settings) else []),
    ]


def _backups(settings: Settings) -> ServiceSpec:
    env = {"CORRAL_HOME": str(settings.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if settings.postgresql_bin is not None:
        env["CORRAL_POSTGRESQL_BIN"] = str(settings.postgresql_bin)
    return ServiceSpec(
        "backups",
        (sys.executable, "-m", "corral.addons.schedule"),
        settings.addons_dir,
        {**env, "PYTHONUNBUFFERED": "1"},
    )


def runs_as_others(settings: Settings) -> bool:
    """Whether an add-on server runs as a user of its own (postgres, redis), who must be
    able to pass through the home to its files."""
    return Cluster(settings).initialised() or bool(redis.service_specs(settings))
