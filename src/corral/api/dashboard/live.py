"""The app page's live log view: new log lines as server-sent events, filtered like
``corral logs --source/--dyno``."""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Response, current_app, g, request, stream_with_context
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.dashboard.blueprint import dashboard_blueprint
from corral.api.logs import _client_gone
from corral.runtime.logs import follow
from corral.streams.lines import (
    CATCH_UP_LINES,
    HEARTBEAT,
    SSE_HELLO,
    Recheck,
    catch_up,
    session_alive,
    sse_event,
)

__all__ = ["CATCH_UP_LINES", "HEARTBEAT"]


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
    backlog = catch_up(log_dir, since, request.args.get("backlog", "0"), source=source, dyno=dyno)
    sent = set(backlog)
    store, token_id = context.store(), g.dashboard_token.id
    allowed = Recheck(lambda: session_alive(store, token_id))

    def stream() -> Iterator[str]:
        try:
            yield SSE_HELLO
            yield from (sse_event(line) for line in backlog)
            quiet_since = time.monotonic()
            if first is not None and first not in sent:
                yield sse_event(first)
            for line in new_lines:
                if line is not None:
                    if line not in sent:
                        quiet_since = time.monotonic()
                        yield sse_event(line)
                elif _client_gone(environ) or not allowed():
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
