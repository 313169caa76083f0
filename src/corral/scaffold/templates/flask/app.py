"""__PROJECT_NAME__: a Flask app made by `corral new`.

Settings come from the environment (`.env` with `corral local`, config vars once
deployed), so the same code runs on your machine and on the platform.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from typing import Any

from flask import Flask, Response, jsonify, render_template
from flask_bootstrap import Bootstrap5
from werkzeug.middleware.proxy_fix import ProxyFix

DEFAULT_GREETING = "Hello from __PROJECT_NAME__!"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment; ``test_config`` (for tests) overrides it."""
    app = Flask(__name__)
    app.config.from_mapping(
        # Set a real one once deployed: corral config:set SECRET_KEY=...
        # The random fallback is safe, but sessions then end with the process.
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_hex(32),
        GREETING=os.environ.get("GREETING") or DEFAULT_GREETING,
        # Bootstrap is served by the app itself: no CDN, the page works offline.
        BOOTSTRAP_SERVE_LOCAL=True,
    )
    # Any FLASK_* variable becomes config too, e.g. FLASK_MAX_CONTENT_LENGTH=1048576.
    app.config.from_prefixed_env()
    if test_config:
        app.config.update(test_config)

    # corral's router sets X-Forwarded-*: trust that one hop, so URLs come out right.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)
    Bootstrap5(app)

    @app.get("/")
    def index() -> str:
        """The home page."""
        return render_template("index.html", greeting=app.config["GREETING"])

    @app.get("/api/hello")
    def hello() -> Response:
        """A small JSON API: the greeting, the time and which process answered."""
        return jsonify(
            message=app.config["GREETING"],
            time=datetime.now().astimezone().isoformat(timespec="seconds"),
            dyno=os.environ.get("DYNO", "local"),
        )

    return app


#: What `gunicorn app:app` (the Procfile's web process) serves.
app = create_app()
