"""What one dyno of a release runs: its command, slug, environment, port and kernel limits."""

from __future__ import annotations

import os

from corral.builder.slug import load_slug
from corral.config import Settings
from corral.runtime import plan
from corral.runtime.cgroups import Limits, base_for_home
from corral.runtime.dyno import DynoSpec
from corral.runtime.environ import base_environ, process_environ
from corral.store.models import Release

__all__ = ["release_dyno_spec"]


def release_dyno_spec(
    settings: Settings,
    release: Release,
    name: str,
    port: int | None,
    quota: int,
    *,
    kernel_limits: bool,
) -> DynoSpec:
    """Dyno ``name`` (``web.1``) of ``release``, with ``quota`` bytes of memory; with
    ``kernel_limits`` it runs in a cgroup of its own under its app's."""
    slug = load_slug(release.slug_path)
    env = process_environ(
        slug,
        base={
            **base_environ(),
            "WEB_CONCURRENCY": str(plan.web_concurrency(quota, os.cpu_count() or 1)),
        },
        config=release.config,
        port=port,
        dyno=name,
        runtime_dir=settings.run_dir / "dynos" / release.app / name,
    )
    command = release.process_types[plan.process_type(name)]
    return DynoSpec(
        release.app,
        name,
        command,
        release.slug_path,
        env,
        port,
        cgroup=f"{base_for_home(settings.home)}/{release.app}" if kernel_limits else None,
        limits=Limits(memory=quota) if kernel_limits else None,
    )
