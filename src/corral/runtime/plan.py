"""The supervisor's decisions, as pure functions of plain values.

Which dynos a release wants, whether an app runs behind its release, when a new dyno
without HTTP has settled, which of a failed dyno's lines explain it, when a crashed unit
is due again, what a dyno's memory use calls for, what the route table says: nothing
here starts, stops or reads anything, so each rule is tested with plain values
(``tests/test_plan.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from corral.router.table import AppRoute, Backend, RouteTable
from corral.store.formation import PHASES
from corral.store.models import Dyno
from corral.store.names import PLATFORM_APP

__all__ = [
    "DEFAULT_SETTLE",
    "MAX_SETTLE",
    "NOT_DYNOS",
    "MemoryVerdict",
    "PlatformRoute",
    "due_for_restart",
    "excerpt",
    "memory_verdict",
    "needs_rollout",
    "process_type",
    "route_table",
    "settle_time",
    "settled",
    "wanted_dynos",
    "web_concurrency",
]

T = TypeVar("T")

#: Process types that are not dynos: ``release`` is a phase each deploy runs once.
NOT_DYNOS = PHASES
#: Seconds a new dyno without HTTP (a worker, a clock) must keep running to count as up.
DEFAULT_SETTLE = 3.0
MAX_SETTLE = 300.0
#: A Python exception's own line (``KeyError: 'DATABASE_URL'``), as a traceback ends.
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)\b")

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


def settle_time(declared: object) -> float:
    """The settle time ``app.json`` declares (``healthcheck.settle``), or the default.

    Anything but a number of seconds from 0 to :data:`MAX_SETTLE` is a ValueError whose
    message says what to write instead.
    """
    if declared is None:
        return DEFAULT_SETTLE
    if (
        isinstance(declared, bool)
        or not isinstance(declared, int | float)
        or not 0 <= declared <= MAX_SETTLE
    ):
        raise ValueError(
            f"app.json's healthcheck.settle is {declared!r}; give a number of seconds "
            f"from 0 to {MAX_SETTLE:.0f}, such as 3"
        )
    return float(declared)


def settled(running_for: float, settle: float) -> bool:
    """Whether a new dyno without HTTP has run long enough to count as up."""
    return running_for >= settle


def excerpt(
    lines: Sequence[T], text: Callable[[T], str], limit: int = 12, tail: int = 3
) -> list[T]:
    """The lines that explain a failed dyno: its last ``limit``, keeping its exception.

    A traceback is often followed by the server's own shutdown lines (gunicorn prints
    several); when those would push the exception's line out, the excerpt ends at that
    line and then shows only the last ``tail`` lines. ``text`` is a line's message.
    """
    last = [i for i, line in enumerate(lines) if _EXCEPTION.match(text(line))]
    if not last or last[-1] >= len(lines) - limit:
        return list(lines[-limit:])
    end = last[-1] + 1
    head = lines[max(0, end - (limit - tail)) : end]
    return [*head, *lines[len(lines) - (limit - len(head)) :]]


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


@dataclass(frozen=True)
class PlatformRoute:
    """The API service as the route table needs it: its unit, its port, the hosts it owns,
    and the port of the streams service that serves its long-lived requests, if it runs."""

    row: Dyno | None
    port: int | None
    hosts: Sequence[str]
    streams_port: int | None = None


def _backends(rows: Iterable[Dyno]) -> tuple[Backend, ...]:
    return tuple(
        Backend(row.name, "127.0.0.1", row.port) for row in rows if row.state == "up" and row.port
    )


def route_table(
    domain: str,
    apps: Mapping[str, tuple[bool, bool]],
    rows: Mapping[str, Sequence[Dyno]],
    custom_domains: Mapping[str, str],
    *,
    api: PlatformRoute | None,
) -> RouteTable:
    """The route table: each app (``name -> (maintenance, has_web)``) with the rows of its
    dynos that are up, custom domains, and the platform's API on its own hosts."""
    table = RouteTable(
        domain=domain,
        apps={
            name: AppRoute(
                app=name,
                backends=_backends(rows.get(name, ())),
                maintenance=maintenance,
                crashed=any(row.state == "crashed" for row in rows.get(name, ())),
                has_web=has_web,
            )
            for name, (maintenance, has_web) in apps.items()
        },
        custom_domains=dict(custom_domains),
    )
    if api is not None:
        table.apps[PLATFORM_APP] = AppRoute(
            PLATFORM_APP,
            backends=(Backend("api", "127.0.0.1", api.port),) if api.port else (),
            crashed=api.row is not None and api.row.state == "crashed",
            streams=(Backend("streams", "127.0.0.1", api.streams_port),)
            if api.streams_port
            else (),
        )
        for host in api.hosts:
            table.custom_domains[host] = PLATFORM_APP
    return table
