"""The formation (how many dynos of each type) and the dynos the manager observes.

Scaling only writes the desired counts; the supervisor starts and stops dynos to match.
A running dyno's memory and CPU are measured over its whole process tree.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.errors import BadRequest
from corral.api.objects import PROCESS_TYPE, formation_json, iso, json_body, json_int
from corral.runtime.dyno import DynoProcess, Usage, tree_usage
from corral.runtime.oneoff import live_one_offs
from corral.store import Dyno, Invalid, OneOff
from corral.store.names import PLATFORM_APP

__all__ = ["CpuSampler", "dyno_json", "dynos_json", "formation_blueprint", "one_off_json"]

formation_blueprint = Blueprint("formation", __name__)


class CpuSampler:
    """CPU use of a process tree since the previous sample (since it started, the first time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[int, float], tuple[float, float]] = {}

    def percent(self, dyno: DynoProcess, used: float) -> float:
        """Percent of one CPU the dyno's tree used since the last sample; ``used``: its CPU
        seconds now."""
        now = time.time()
        key = (dyno.pid, dyno.started_at)
        with self._lock:
            then, before = self._last.get(key, (dyno.started_at, 0.0))
            self._last[key] = (now, used)
            if len(self._last) > 4096:  # forget dynos long gone
                self._last = {key: self._last[key]}
        elapsed = now - then
        return round(max(used - before, 0.0) / elapsed * 100, 1) if elapsed > 0 else 0.0


_sampler = CpuSampler()


def dynos_json(dynos: list[Dyno]) -> list[dict[str, Any]]:
    """``Dyno`` objects; memory and CPU only while their processes run, from one scan."""
    live = {
        dyno.pid: DynoProcess(dyno.pid, dyno.pid_start_time)
        for dyno in dynos
        if dyno.pid is not None and dyno.pid_start_time is not None
        and dyno.state in ("starting", "up")
    }  # fmt: skip
    usage = tree_usage(pid for pid, process in live.items() if process.alive())
    return [_dyno_json(dyno, live.get(dyno.pid or 0), usage.get(dyno.pid or 0)) for dyno in dynos]


def dyno_json(dyno: Dyno) -> dict[str, Any]:
    """A ``Dyno`` object; memory and CPU only while its process runs."""
    return dynos_json([dyno])[0]


def _dyno_json(dyno: Dyno, process: DynoProcess | None, usage: Usage | None) -> dict[str, Any]:
    rss = usage.rss if usage else None
    cpu = _sampler.percent(process, usage.cpu) if usage and process else None
    return {
        "app": dyno.app,
        "name": dyno.name,
        "type": dyno.process_type,
        "release": f"v{dyno.release_version}",
        "state": dyno.state,
        "since": iso(dyno.since),
        "port": dyno.port,
        "pid": dyno.pid,
        "restarts": dyno.restarts,
        "next_restart_at": iso(dyno.next_restart_at),
        "rss_bytes": rss,
        "cpu_percent": cpu,
    }


def one_off_json(one_off: OneOff) -> dict[str, Any]:
    """A one-off (``run.1234``) as a ``Dyno`` object, with its command and how it runs."""
    dyno = Dyno(
        one_off.app, one_off.name, "run", one_off.release_version, one_off.pid,
        one_off.pid_start_time, None, "up", since=one_off.started_at,
    )  # fmt: skip
    return {**dyno_json(dyno), "command": one_off.command, "attached": one_off.attached}


def _formation(app: str) -> list[dict[str, Any]]:
    store = context.store()
    release = store.current_release(app)
    return [formation_json(entry, release) for entry in store.formation(app)]


@formation_blueprint.get("/apps/<app>/formation")
def show_formation(app: str) -> ResponseReturnValue:
    """One entry per process type of the current release."""
    return jsonify(_formation(app))


@formation_blueprint.patch("/apps/<app>/formation")
def scale(app: str) -> ResponseReturnValue:
    """Set dyno counts, e.g. ``{"web": 3, "worker": 1}``."""
    body = json_body()
    if not body:
        raise BadRequest('Give the dyno counts to set, such as {"web": 2}.')
    odd = sorted(name for name in body if not PROCESS_TYPE.fullmatch(name))
    if odd:
        raise Invalid(
            f"{odd[0]!r} is not a process type name: a Procfile names them with letters, "
            "digits, '-' and '_', such as web or worker."
        )
    context.store().scale(app, {name: json_int(quantity) for name, quantity in body.items()})
    return jsonify(_formation(app))


@formation_blueprint.get("/apps/<app>/dynos")
def list_dynos(app: str) -> ResponseReturnValue:
    """The app's dynos as the supervisor last observed them, then its running one-offs."""
    store = context.store()
    store.get_app(app)
    one_offs = [one_off_json(o) for o in live_one_offs(store, app)]
    return jsonify(dynos_json(store.dynos(app)) + one_offs)


@formation_blueprint.get("/platform/dynos")
def list_platform_dynos() -> ResponseReturnValue:
    """The platform's own services (API, router, ...), supervised like dynos."""
    return jsonify(dynos_json(context.store().dynos(PLATFORM_APP)))


@formation_blueprint.post("/apps/<app>/dynos/restart")
def restart_dynos(app: str) -> ResponseReturnValue:
    """Ask the supervisor to restart dynos: all, one process type or one dyno."""
    return _dyno_request(app, "restart")


@formation_blueprint.post("/apps/<app>/dynos/stop")
def stop_dynos(app: str) -> ResponseReturnValue:
    """Ask the supervisor to stop dynos; those in the formation are started again."""
    return _dyno_request(app, "stop")


def _dyno_request(app: str, action: str) -> ResponseReturnValue:
    target = json_body().get("target")
    if target is not None and not isinstance(target, str):
        raise BadRequest('Give the target as a string, such as {"target": "web"}.')
    context.store().request_dynos(app, action, target)
    return jsonify({"app": app, "action": action, "target": target}), 202
