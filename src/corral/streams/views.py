"""The streams service's two endpoints, as the API would answer them: who may, and what.

A view checks access and its arguments at once and returns either a short
:class:`~corral.streams.http.Answer` (an error, or the recent lines without ``tail``) or
a :class:`Stream`: a body of pieces, and the access check the service repeats while it
is open (the token still exists; the dashboard session's token still exists).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from corral.cookies import SIGN_IN_FIRST, SessionReader
from corral.errors import TOKEN_REQUIRED
from corral.logfiles import LogLine
from corral.runtime.logs import Tail, recent
from corral.store import Store
from corral.streams.http import Answer, Request
from corral.streams.lines import (
    REVOKED,
    SSE_HELLO,
    catch_up,
    lines_wanted,
    session_alive,
    sse_event,
    wants_tail,
)

__all__ = ["Stream", "ViewContext", "dashboard_stream", "log_tail"]

_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class ViewContext:
    """What the views need, fixed while the service runs."""

    store: Store
    #: The log directory of an app.
    logs_dir: Callable[[str], Path]
    sessions: SessionReader
    #: Seconds between polls of the log files.
    interval: float = 0.2
    #: Seconds between SSE comments on a quiet dashboard stream.
    heartbeat: float = 15.0


@dataclass(frozen=True)
class Stream:
    """A long-lived answer: its content type, its body, and who may still read it."""

    content_type: str
    #: Pieces to send as they come; None when a poll found nothing (a moment to re-check).
    body: AsyncIterator[bytes | None]
    #: Whether the client may still read the stream (checked every few seconds).
    allowed: Callable[[], bool]
    #: Sent (as the last piece) when ``allowed`` turns false.
    farewell: bytes = b""


async def _polls(tail: Tail, interval: float) -> AsyncIterator[list[LogLine]]:
    """Each poll's new lines; an empty list when a poll found none (then a pause)."""
    while True:
        batch = tail.poll()
        yield batch
        if not batch:
            await asyncio.sleep(interval)


def _text(lines: list[LogLine]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


def log_tail(ctx: ViewContext, request: Request, app: str) -> Answer | Stream:
    """``GET /api/v1/apps/<app>/logs``: the last ``n`` lines, then with ``tail`` new ones."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    secret = secret.strip() if scheme.lower() == "bearer" else ""
    if not secret or ctx.store.verify_token(secret) is None:
        return Answer.error(401, TOKEN_REQUIRED, api=True)
    ctx.store.get_app(app)  # NotFound: the 404 the API gives
    n = lines_wanted(request.query.get("n"))
    source, dyno = request.arg("source") or None, request.arg("dyno") or None
    log_dir = ctx.logs_dir(app)
    if not wants_tail(request.query.get("tail")):
        return Answer(200, _TEXT, _text(recent(log_dir, n, source=source, dyno=dyno)))
    # Start following before reading the backlog: a line written in between may come
    # twice, but none is lost.
    tail = Tail(log_dir, source=source, dyno=dyno)
    backlog = recent(log_dir, n, source=source, dyno=dyno)

    async def body() -> AsyncIterator[bytes | None]:
        yield _text(backlog)
        async for batch in _polls(tail, ctx.interval):
            yield _text(batch) or None

    return Stream(
        _TEXT,
        body(),
        allowed=lambda: ctx.store.verify_token(secret) is not None,
        farewell=f"{REVOKED}\n".encode(),
    )


def dashboard_stream(ctx: ViewContext, request: Request, app: str) -> Answer | Stream:
    """``GET /apps/<app>/logs/stream``: the dashboard's live log lines as server-sent events.

    The same catch-up rules as the API's view: lines after ``since`` (or a reconnecting
    browser's ``Last-Event-ID``), else ``backlog`` recent lines, else none.
    """
    token_id = ctx.sessions.token_id(request.headers.get("cookie", ""))
    if token_id is None or not session_alive(ctx.store, token_id):
        return Answer.error(401, SIGN_IN_FIRST, api=False)
    ctx.store.get_app(app)
    source, dyno = request.arg("source") or None, request.arg("dyno") or None
    since = request.headers.get("last-event-id") or request.arg("since")
    log_dir = ctx.logs_dir(app)
    # Follow first, then read the backlog: a line in both is sent once, and none is lost.
    tail = Tail(log_dir, source=source, dyno=dyno)
    backlog = catch_up(log_dir, since, request.arg("backlog", "0"), source=source, dyno=dyno)
    sent = set(backlog)

    async def body() -> AsyncIterator[bytes | None]:
        yield (SSE_HELLO + "".join(sse_event(line) for line in backlog)).encode()
        quiet_since = time.monotonic()
        async for batch in _polls(tail, ctx.interval):
            fresh = [line for line in batch if line not in sent]
            if fresh:
                quiet_since = time.monotonic()
                yield "".join(sse_event(line) for line in fresh).encode()
            elif time.monotonic() - quiet_since >= ctx.heartbeat:
                quiet_since = time.monotonic()
                yield b": heartbeat\n\n"
            else:
                yield None

    return Stream(
        "text/event-stream; charset=utf-8",
        body(),
        allowed=lambda: session_alive(ctx.store, token_id),
    )
