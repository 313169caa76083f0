"""An app's logs (recent lines, or a live tail) and its current ``pip freeze``, as plain text."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request, stream_with_context
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.errors import BadRequest
from corral.api.objects import slug_freeze, whole_number
from corral.logfiles import MAX_LOG_LINES
from corral.runtime.logs import follow, recent
from corral.store import NotFound

__all__ = ["logs_blueprint"]

logs_blueprint = Blueprint("logs", __name__)


#: The spellings of ``tail`` (a flag): on, and off.
TAIL_ON = ("1", "true", "yes")
TAIL_OFF = ("0", "false", "no")


def _lines_arg() -> int:
    raw = request.args.get("n", "100")
    n = whole_number(raw)
    if n is None or not 1 <= n <= MAX_LOG_LINES:
        raise BadRequest(
            f"n must be a whole number of lines from 1 to {MAX_LOG_LINES}, not {raw!r}."
        )
    return n


def _tail_arg() -> bool:
    raw = request.args.get("tail", "0")
    if raw not in TAIL_ON + TAIL_OFF:
        raise BadRequest(f"tail must be 1 (stream new lines) or 0, not {raw!r}.")
    return raw in TAIL_ON


def _client_gone(environ: dict[str, Any]) -> bool:
    """Whether the client closed its connection (only knowable under gunicorn)."""
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, ValueError):  # ValueError: a TLS socket cannot peek
        return False
    except OSError:
        return True


@logs_blueprint.get("/apps/<app>/logs")
def logs(app: str) -> ResponseReturnValue:
    """The last ``n`` lines; with ``tail=1`` new lines stream until the client leaves."""
    context.store().get_app(app)
    n = _lines_arg()
    source = request.args.get("source") or None
    dyno = request.args.get("dyno") or None
    tail = _tail_arg()
    log_dir = context.settings().logs_dir(app)
    if not tail:
        lines = recent(log_dir, n, source=source, dyno=dyno)
        return Response("".join(f"{line}\n" for line in lines), mimetype="text/plain")
    environ = request.environ
    # Start following before reading the backlog: a line written in between may come
    # twice, but none is lost.
    new_lines = follow(log_dir, source=source, dyno=dyno, heartbeat=True)
    first = next(new_lines)
    lines = recent(log_dir, n, source=source, dyno=dyno)

    def stream() -> Iterator[str]:
        yield ""  # sends the headers now, even when there is nothing to show yet
        yield from (f"{line}\n" for line in lines)
        if first is not None:
            yield f"{first}\n"
        for line in new_lines:
            if line is not None:
                yield f"{line}\n"
            elif _client_gone(environ):
                return

    return Response(
        stream_with_context(stream()),
        mimetype="text/plain",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@logs_blueprint.get("/apps/<app>/freeze")
def freeze(app: str) -> ResponseReturnValue:
    """The packages installed in the current release's environment, one per line."""
    release = context.store().current_release(app)
    if release is None:
        raise NotFound(f"{app} has no release yet; deploy it with git push first.")
    packages = slug_freeze(release)
    if packages is None:
        raise NotFound(f"The slug of {release.name} of {app} is gone from disk; deploy again.")
    return Response("".join(f"{package}\n" for package in packages), mimetype="text/plain")
