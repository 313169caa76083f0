"""The API app as gunicorn loads it: ``gunicorn corral.api.wsgi:app``.

``corral server`` passes the home, domain and router port in the environment, which
:meth:`Settings.load` reads.
"""

from __future__ import annotations

from corral.api import create_app
from corral.api.pipeline import install_pipeline
from corral.config import Settings

app = install_pipeline(create_app(Settings.load()))
