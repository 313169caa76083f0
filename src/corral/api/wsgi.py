"""The API app as gunicorn loads it: ``gunicorn corral.api.wsgi:app``.

``corral server`` passes the domain and router port in the environment.
"""

from __future__ import annotations

import os

from corral.api import create_app
from corral.config import Settings
from corral.deploy.http import install

app = install(
    create_app(
        Settings.load(),
        domain=os.environ.get("CORRAL_DOMAIN", "localhost"),
        router_port=int(os.environ.get("CORRAL_ROUTER_PORT", "8080")),
    )
)
