"""The API's own streaming views (which serve while the streams service is down) end a
stream once its token is revoked, as the streams service does."""

from __future__ import annotations

import time

from flask import Flask

from corral.store import Store
from corral.streams.lines import RECHECK
from support.dashboard import log_in


def _read_to_end(chunks, limit: float) -> str:
    """Everything the stream still sends, failing if it has not ended within ``limit`` s."""
    started, text = time.monotonic(), ""
    for chunk in chunks:
        text += chunk.decode() if isinstance(chunk, bytes) else chunk
        assert time.monotonic() - started < limit, f"the stream went on: {text!r}"
    return text


def test_a_revoked_token_ends_its_log_tail(app: Flask, store: Store) -> None:
    token, secret = store.create_token("short-lived")
    store.create_app("hello")
    response = app.test_client().get(
        "/api/v1/apps/hello/logs?tail=1",
        headers={"Authorization": f"Bearer {secret}"},
        buffered=False,
    )
    try:
        assert response.status_code == 200
        chunks = iter(response.response)
        store.delete_token(token.id)
        assert "this stream's token was revoked" in _read_to_end(chunks, RECHECK + 3)
    finally:
        response.close()


def test_a_revoked_token_ends_its_dashboard_log_stream(app: Flask, store: Store) -> None:
    token, secret = store.create_token("short-lived")
    store.create_app("hello")
    client = log_in(app.test_client(), secret)
    response = client.get("/apps/hello/logs/stream", buffered=False)
    try:
        assert response.status_code == 200
        chunks = iter(response.response)
        assert ": connected" in next(chunks).decode()
        store.delete_token(token.id)
        _read_to_end(chunks, RECHECK + 3)
    finally:
        response.close()
