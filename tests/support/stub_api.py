"""A stand-in for the corral API, for the CLI's client tests: the contract's error shape and
token check, and a thread that serves a test's Flask app on loopback.

Each test module defines its own tiny Flask app implementing the endpoints it needs exactly
as docs/api.md says; these helpers only give it the common pieces and serve it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

TOKEN = "s3cret-token-for-tests"


def api_error(status: int, error_id: str, message: str) -> tuple[Any, int]:
    """An error answer shaped like docs/api.md's."""
    return jsonify({"id": error_id, "message": message}), status


def require_token(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer 401 unless the request carries ``Authorization: Bearer TOKEN``."""

    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return api_error(401, "unauthorized", "Missing or wrong API token.")
        return view(*args, **kwargs)

    return checked


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
