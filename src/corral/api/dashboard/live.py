"""The app page's live log view: new log lines as server-sent events, filtered like
``corral logs --source/--dyno``."""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Response, current_app, request, stream_with_context
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.dashboard.blueprint import dashboard_blueprint
from corral.api.logs import _client_gone
from corral.api.objects import whole_number
from corral.logfiles import LogLine
from corral.runtime.logs import follow, recent

__all__ = ["CATCH_UP_LINES", "HEARTBEAT"]

#: How many lines a reconnecting log stream may catch up on, or a fresh one start with.
CATCH_UP_LINES = 1000
#: Seconds between SSE comments that keep an idle log stream open.
HEARTBEAT = 15.0


def _event(line: LogLine) -> str:
    # A carriage return would end the SSE field early.
    data = str(line).replace("\r", "")
    return f"id: {line.timestamp}\ndata: {data}\n\n"


def _backlog_size() -> int:
    size = whole_number(request.args.get("backlog", "0"))
    return 0 if size is None else min(size, CATCH_UP_LINES)


@dashboard_blueprint.get("/apps/<app>/logs/stream")
def log_stream(app: str) -> ResponseReturnValue:
    """New log lines as server-sent events, one line each, until the client leaves.

    Lines after ``since`` (or the ``Last-Event-ID`` of a reconnecting browser) come first,
    so nothing written between the page load and this request is missed; without either,
    ``backlog`` asks for that many recent lines first (after the filters changed).
    ``source`` and ``dyno`` filter the lines as ``corral logs`` does.
    """
    context.store().get_app(app)
    log_dir = context.settings().logs_dir(app)
    source = request.args.get("source") or None
    dyno = request.args.get("dyno") or None
    since = request.headers.get("Last-Event-ID") or request.args.get("since", "")
    heartbeat = current_app.config["CORRAL_DASHBOARD_HEARTBEAT"]
    environ = request.environ
    # Follow first, then read the backlog: a line in both is sent once, and none is lost.
    new_lines = follow(log_dir, source=source, dyno=dyno, heartbeat=True)
    first = next(new_lines)
    if since:
        backlog = [
            line
            for line in recent(log_dir, CATCH_UP_LINES, source=source, dyno=dyno)
            if line.timestamp > since
        ]
    elif size := _backlog_size():
        backlog = recent(log_dir, size, source=source, dyno=dyno)
    else:
        backlog = []  # the page that opened the stream already shows the recent lines
    sent = set(backlog)

    def stream() -> Iterator[str]:
        try:
            yield "retry: 3000\n: connected\n\n"
            yield from (_event(line) for line in backlog)
            quiet_since = time.monotonic()
            if first is not None and first not in sent:
                yield _event(first)
            for line in new_lines:
                if line is not None:
                    if line not in sent:
                        quiet_since = time.monotonic()
                        yield _event(line)
                elif _client_gone(environ):
                    return
                elif time.monotonic() - quiet_since >= heartbeat:
                    quiet_since = time.monotonic()
                    yield ": heartbeat\n\n"
        finally:
            new_lines.close()

    return Response(
        stream_with_context(stream()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
