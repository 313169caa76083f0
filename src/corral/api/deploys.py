"""Builds and one-off dynos: upload a source tarball to deploy it, run a command in a release.

The work is done by the pipeline in ``app.extensions["corral.pipeline"]``, whose
``build(app, tar_stream)`` and ``run(app, command)`` yield lines of text that are streamed
back as they come. The first line is produced before the answer starts, so an error the
pipeline raises up front (no such app, no release yet) is still a JSON error answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, Protocol

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.errors import BadRequest, Unavailable
from corral.api.objects import build_json, command_field, json_body

__all__ = ["BuildsAndRuns", "deploys_blueprint"]

deploys_blueprint = Blueprint("deploys", __name__)


class BuildsAndRuns(Protocol):
    """What the builds and run routes need from the deploy pipeline."""

    def build(self, app_name: str, tar_stream: Any) -> Iterator[str]:
        """Build and release an uploaded gzipped tarball; the last line is the verdict."""
        ...

    def run(self, app_name: str, command: list[str]) -> Iterator[str]:
        """Run ``command`` in the current release; the last line is its exit status."""
        ...


def _pipeline() -> BuildsAndRuns:
    pipeline = current_app.extensions.get("corral.pipeline")
    if pipeline is None:
        raise Unavailable("This server cannot build or run apps: no deployer is configured.")
    return pipeline


def _streamed(lines: Iterator[str]) -> Response:
    """Stream ``lines`` as text, after taking the first so early errors are still answers."""
    first = list(itertools.islice(lines, 1))
    text = (line if line.endswith("\n") else line + "\n" for line in itertools.chain(first, lines))
    return Response(
        stream_with_context(text),
        mimetype="text/plain",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@deploys_blueprint.get("/apps/<app>/builds")
def list_builds(app: str) -> ResponseReturnValue:
    """The app's builds, newest first."""
    return jsonify([build_json(build) for build in context.store().builds(app)])


@deploys_blueprint.post("/apps/<app>/builds")
def create_build(app: str) -> ResponseReturnValue:
    """Build and release the gzipped tarball in the body, streaming the build output."""
    pipeline = _pipeline()
    context.store().get_app(app)
    if not request.content_length and "HTTP_TRANSFER_ENCODING" not in request.environ:
        raise BadRequest(
            "Send the gzipped tarball of the source as the request body; "
            "with the CLI: `corral deploy` in the app's directory."
        )
    return _streamed(iter(pipeline.build(app, request.stream)))


@deploys_blueprint.post("/apps/<app>/run")
def run(app: str) -> ResponseReturnValue:
    """Run a one-off command in the current release, streaming its output."""
    command = command_field(json_body().get("command"))
    pipeline = _pipeline()
    context.store().get_app(app)
    return _streamed(iter(pipeline.run(app, command)))
