"""The add-on servers the supervisor keeps running, as platform services: the PostgreSQL
cluster once an add-on has made it, and each Redis add-on's own server."""

from __future__ import annotations

from corral.addons import redis
from corral.addons.cluster import Cluster
from corral.config import Settings
from corral.runtime.services import ServiceSpec

__all__ = ["service_specs"]


def service_specs(settings: Settings) -> list[ServiceSpec]:
    """What runs now: asked again at every tick of the supervisor (a few file checks)."""
    cluster = Cluster(settings)
    return [
        *([cluster.service()] if cluster.initialised() else []),
        *redis.service_specs(settings),
    ]
