"""The API's deploys: the builds/run routes' pipeline and the git endpoint, added to an app.

:func:`create_app` leaves them out (an app without them answers 503 to builds and runs);
:mod:`corral.api.wsgi` adds them with :func:`install_pipeline`.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO

from flask import Flask

from corral.api.git import git_blueprint
from corral.deploy.pipeline import DeployPipeline

__all__ = ["PipelineHandle", "install_pipeline"]


class PipelineHandle:
    """The :class:`~corral.api.deploys.BuildsAndRuns` of the API: a deploy pipeline per process.

    The pipeline is made on first use, in each gunicorn worker, on that worker's store.
    """

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._pipeline: DeployPipeline | None = None
        self._lock = threading.Lock()

    def _get(self) -> DeployPipeline:
        with self._lock:
            if self._pipeline is None:
                store = self._app.extensions["corral.store_factory"]()
                settings = self._app.extensions["corral.settings"]
                self._pipeline = DeployPipeline(settings, store)
            return self._pipeline

    def build(self, app: str, stream: BinaryIO) -> Iterator[str]:
        """Deploy an uploaded tarball (``POST /apps/<app>/builds``)."""
        return self._get().build_tarball(app, stream)

    def deploy_source(self, app: str, source: Path, description: str) -> Generator[str, None, None]:
        """Deploy a pushed source tree (``git push``: the pre-receive hook hands it over)."""
        yield from self._get().deploy_source(app, source, description)

    def run(self, app: str, command: list[str]) -> Iterator[str]:
        """A one-off dyno (``POST /apps/<app>/run``)."""
        return self._get().run(app, command)


def install_pipeline(app: Flask) -> Flask:
    """Give the API its deploys: the builds/run routes' pipeline and the git endpoint."""
    app.extensions["corral.pipeline"] = PipelineHandle(app)
    app.register_blueprint(git_blueprint)
    return app
