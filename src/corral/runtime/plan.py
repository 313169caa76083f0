"""The supervisor's decisions, as pure functions of plain values.

Which dynos a release wants, whether an app runs behind its release, when a crashed unit
is due again, what a dyno's memory use calls for: nothing here starts, stops or reads
anything, so each rule is tested with plain values (``tests/test_plan.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

__all__ = [
    "NOT_DYNOS",
    "MemoryVerdict",
    "due_for_restart",
    "memory_verdict",
    "needs_rollout",
    "process_type",
    "wanted_dynos",
    "web_concurrency",
]

#: Process types that are not dynos: ``release`` runs once per deploy.
NOT_DYNOS = frozenset({"release"})

MemoryVerdict = Literal["ok", "warn", "restart"]


def process_type(dyno: str) -> str:
    """``web`` for ``web.1``."""
    return dyno.rsplit(".", 1)[0]


def wanted_dynos(
    process_types: Iterable[str], quantities: Mapping[str, int], *, first_deploy: bool
) -> list[str]:
    """The dyno names a release runs: ``web.1``, ``web.2``, ``worker.1``, in Procfile order.

    The first deploy of an app with a ``web`` type starts one web dyno even before anyone
    scaled it, as Heroku does; ``release`` is a phase, never a dyno.
    """
    counts = dict(quantities)
    types = list(process_types)
    if first_deploy and "web" in types:
        counts.setdefault("web", 1)
    return [
        f"{kind}.{i}"
        for kind in types
        if kind not in NOT_DYNOS
        for i in range(1, counts.get(kind, 0) + 1)
    ]


def needs_rollout(
    *,
    target_version: int,
    target_pending: bool,
    running_versions: Iterable[int],
    failed_version: int | None,
) -> bool:
    """Whether the app must roll out its target release rather than just converge on it.

    A pending release (a deploy waiting for its verdict) always rolls out, and so does a
    release some running dyno is behind (a config change, a rollback); a release whose
    rollout already failed is not retried until a newer one comes.
    """
    if failed_version == target_version:
        return False
    return target_pending or any(version != target_version for version in running_versions)


def due_for_restart(next_restart_at: float | None, now: float) -> bool:
    """Whether a crashed unit's backoff delay has passed."""
    return (next_restart_at or 0.0) <= now


def memory_verdict(used: int, quota: int, *, warned: bool) -> MemoryVerdict:
    """What ``used`` bytes against ``quota`` call for: R15 past twice the quota, R14 past it."""
    if used > 2 * quota:
        return "restart"
    if used > quota and not warned:
        return "warn"
    return "ok"


def web_concurrency(memory_quota: int, cpus: int) -> int:
    """gunicorn workers per web dyno: one per 256 MB of quota, at most two per core."""
    return max(1, min(2 * cpus, memory_quota // (256 * 1024 * 1024)))
