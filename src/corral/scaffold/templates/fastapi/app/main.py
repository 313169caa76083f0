"""__PROJECT_NAME__: a FastAPI app made by `corral new --template fastapi`."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from app.settings import Settings

HERE = Path(__file__).parent


class Hello(BaseModel):
    message: str
    time: datetime
    dyno: str


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; ``settings`` (for tests) replaces those of the environment."""
    settings = settings or Settings.from_environ()
    app = FastAPI(title="__PROJECT_NAME__")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        """The home page."""
        context = {"greeting": settings.greeting}
        return templates.TemplateResponse(request, "index.html", context)

    @app.get("/api/hello")
    def hello() -> Hello:
        """The greeting, the time and which process answered (see /docs)."""
        return Hello(
            message=settings.greeting,
            time=datetime.now().astimezone(),
            dyno=os.environ.get("DYNO", "local"),
        )

    return app


#: What uvicorn (the Procfile's web process) serves.
app = create_app()
