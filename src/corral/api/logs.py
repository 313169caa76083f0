"""An app's logs (recent lines, or a live tail) and its current ``pip freeze``, as plain text."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request, stream_with_context
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.objects import slug_freeze
from corral.runtime.logs import follow, recent
from corral.store import NotFound
from corral.streams.lines import REVOKED, Recheck, lines_wanted, wants_tail

__all__ = ["logs_blueprint"]

logs_blueprint = Blueprint("logs", __name__)


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
    n = lines_wanted(request.args.get("n"))
    source = request.args.get("source") or None
    dyno = request.args.get("dyno") or None
    tail = wants_tail(request.args.get("tail"))
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
    secret = request.headers.get("Authorization", "").partition(" ")[2].strip()
    store = context.store()
    allowed = Recheck(lambda: store.verify_token(secret) is not None)

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
            elif not allowed():
                yield f"{REVOKED}\n"
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
