"""One-off dynos: ``corral run`` (attached, over a WebSocket), ``run:detached`` and ``ps:kill``.

Every one-off runs in the app's current release with its config vars (as dynos do) and is
recorded in the store while it runs, so ``ps`` lists it; the supervisor never touches it.
An attached one-off's session is served by :mod:`corral.api.attach`.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from typing import Any

from flask import Blueprint, Request, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from corral import wire
from corral.api import attach, context
from corral.api.errors import BadRequest, Unavailable
from corral.api.formation import one_off_json
from corral.api.objects import command_field, json_body
from corral.config import Settings
from corral.runtime import dyno as dynos
from corral.runtime import oneoff
from corral.runtime.confined import Confinement
from corral.store import Conflict, NotFound, OneOff, Release, Store

__all__ = ["one_off", "oneoffs_blueprint", "release_to_run", "serve_attached", "start_parameters"]

oneoffs_blueprint = Blueprint("oneoffs", __name__)

#: What a ``TERM`` passed on may look like (``xterm-256color``).
_TERM = re.compile(r"[\w.+-]{1,64}")
#: Seconds ``ps:kill`` lets a one-off stop after SIGTERM before killing it.
KILL_GRACE = 5.0


def release_to_run(store: Store, app: str) -> Release:
    """The release a one-off of ``app`` runs in: the current one; Conflict before any."""
    store.get_app(app)
    release = store.current_release(app)
    if release is None:
        raise Conflict(f"{app} has no release yet; deploy it before running commands.")
    return release


def start_parameters(req: Request) -> dict[str, Any]:
    """The JSON start header of an attached session (``command``, ``tty``, size, ...)."""
    try:
        start = json.loads(req.headers.get(wire.START_HEADER, ""))
    except ValueError:
        start = None
    if not isinstance(start, dict):
        raise BadRequest(
            f"Give the command in the {wire.START_HEADER} header as JSON, "
            'such as {"command": ["bash"], "tty": true}.'
        )
    return start


def _spec(store: Store, app: str, command: list[str], term: str | None = None) -> oneoff.OneOffSpec:
    release = release_to_run(store, app)
    taken = {o.name for o in store.one_offs(app)}
    quota = store.get_app(app).memory_quota_mb
    confinement = Confinement.for_app(context.settings(), app, quota)
    return oneoff.one_off_spec(release, command, taken=taken, term=term, confinement=confinement)


def _record(
    store: Store, spec: oneoff.OneOffSpec, pid: int, started: float, attached: bool
) -> OneOff:
    return store.record_one_off(
        OneOff(
            app=spec.app,
            name=spec.name,
            command=" ".join(spec.command),
            release_version=spec.release_version,
            pid=pid,
            pid_start_time=started,
            attached=attached,
            started_at=time.time(),
        )
    )


# websocket=True: werkzeug matches upgrade requests only to rules that say they take them.
@oneoffs_blueprint.get("/apps/<app>/run", websocket=True)
def attach_run(app: str) -> ResponseReturnValue:
    """``corral run``: a one-off attached over a WebSocket (see :mod:`corral.wire`)."""
    store = context.store()
    start = start_parameters(request)
    spec = one_off(store, app, command_field(start.get("command")), start)
    return serve_attached(store, app, spec, start)


def one_off(store: Store, app: str, command: list[str], start: dict[str, Any]) -> oneoff.OneOffSpec:
    """The one-off of ``command`` an attached session of ``app`` runs (its ``TERM`` the
    start header's)."""
    term = start.get("term")
    return _spec(
        store, app, command, term if isinstance(term, str) and _TERM.fullmatch(term) else None
    )


def serve_attached(
    store: Store, app: str, spec: oneoff.OneOffSpec, start: dict[str, Any]
) -> ResponseReturnValue:
    """Take the request's connection over and run ``spec`` on it, in a thread of its own."""
    sock = attach.upgrade_socket(request.environ)
    if sock is None:
        raise Unavailable(
            "This server cannot hold interactive sessions: serve the API with gunicorn."
        )
    rows, cols = (_size(start.get(key), default) for key, default in (("rows", 24), ("cols", 80)))
    peer = attach.accept(attach.take_socket(sock), request.environ)
    logger, tty = current_app.logger, start.get("tty") is True

    def session() -> None:
        try:
            _serve(store, peer, spec, tty=tty, rows=rows, cols=cols)
        except Exception:  # a bug: the connection is ours now, so no error page can go out
            logger.exception("The session of %s on %s failed", spec.name, app)
        finally:
            peer.close()

    # its own thread, not one of the worker's: a shell may stay open for hours
    threading.Thread(target=session, name=f"corral run {spec.name}", daemon=True).start()
    return attach.Hijacked()


@oneoffs_blueprint.get("/apps/<app>/run")
def run_without_upgrade(app: str) -> ResponseReturnValue:
    """The same path without the upgrade: say what it is."""
    raise BadRequest(
        "This route is a WebSocket (send Upgrade: websocket); run commands with `corral run`."
    )


def _size(value: Any, default: int) -> int:
    return min(max(value, 1), 9999) if isinstance(value, int) else default


def _serve(
    store: Store, peer: wire.Peer, spec: oneoff.OneOffSpec, *, tty: bool, rows: int, cols: int
) -> None:
    try:
        session = oneoff.spawn(spec, tty=tty, rows=rows, cols=cols)
    except OSError as exc:
        peer.send_data(wire.STDERR, f"{spec.command[0]}: {exc.strerror}\n".encode())
        peer.send_control("exit", status=127)
        return
    record = _record(store, spec, session.pid, session.started_at, attached=True)
    try:
        peer.send_control("started", dyno=spec.name)
        status = attach.bridge(peer, session)
        if status is not None:
            peer.send_control("exit", status=status)
    finally:
        store.delete_one_off(spec.app, record.name, record.pid)


@oneoffs_blueprint.post("/apps/<app>/one-offs")
def run_detached(app: str) -> ResponseReturnValue:
    """``run:detached``: start a one-off whose output goes to the app's logs."""
    store = context.store()
    command = command_field(json_body().get("command"))
    spec = _spec(store, app, command)
    settings: Settings = current_app.extensions["corral.settings"]
    process, popen = oneoff.start_detached(spec, settings.logs_dir(app), settings.run_dir)
    record = _record(store, spec, process.pid, process.started_at, attached=False)
    threading.Thread(target=_reap, args=(store, record, popen), daemon=True).start()
    return jsonify(one_off_json(record)), 201


def _reap(store: Store, record: OneOff, popen: dynos.ShimChild) -> None:
    popen.wait()
    store.delete_one_off(record.app, record.name, record.pid)


@oneoffs_blueprint.get("/apps/<app>/one-offs")
def list_one_offs(app: str) -> ResponseReturnValue:
    """The app's one-offs that are running."""
    store = context.store()
    store.get_app(app)
    return jsonify([one_off_json(o) for o in oneoff.live_one_offs(store, app)])


@oneoffs_blueprint.delete("/apps/<app>/one-offs/<name>")
def kill_one_off(app: str, name: str) -> ResponseReturnValue:
    """``ps:kill``: SIGTERM the one-off, SIGKILL it (its whole session) after a grace period."""
    store = context.store()
    store.get_app(app)
    found = [o for o in oneoff.live_one_offs(store, app) if o.name == name]
    if not found:
        if name in {d.name for d in store.dynos(app)}:
            raise BadRequest(
                f"{name} is not a one-off dyno; ps:kill stops one-offs such as run.1234. "
                f"Stop a dyno of the formation with `corral ps:stop {name}`."
            )
        raise NotFound(f"There is no running one-off dyno named {name} in {app}; see `corral ps`.")
    [target] = found
    process = dynos.DynoProcess(target.pid, target.pid_start_time)
    dynos.signal_group(process, signal.SIGTERM)
    threading.Thread(target=_kill_later, args=(process,), daemon=True).start()
    return jsonify({**one_off_json(target), "state": "stopping"}), 202


def _kill_later(process: dynos.DynoProcess) -> None:
    deadline = time.monotonic() + KILL_GRACE
    while time.monotonic() < deadline and process.alive():
        time.sleep(0.1)
    if process.alive():
        oneoff.kill_session(process.pid)
