"""Parse a Procfile, or infer the ``web`` process for Flask, Django and ASGI apps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from corral.errors import ProcfileError

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class ProcessTypes:
    """Process type name → command, in Procfile order, and how they were found."""

    commands: dict[str, str]
    #: Human description of an inference ("Flask app in app.py"), or "" for a Procfile.
    inferred_from: str = ""


def parse_procfile(text: str, origin: str = "Procfile") -> dict[str, str]:
    """Parse ``name: command`` lines; comments and blank lines are allowed."""
    commands: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not sep or not _NAME.match(name):
            raise ProcfileError(
                f"{origin} line {number} is not `name: command` with a name of letters, "
                f"digits, '-' or '_' (got {raw.strip()!r}); fix that line."
            )
        if not command:
            raise ProcfileError(f"{origin} line {number} gives {name!r} no command; add one.")
        if name in commands:
            raise ProcfileError(f"{origin} line {number} defines {name!r} a second time; keep one.")
        commands[name] = command
    if not commands:
        raise ProcfileError(f"{origin} defines no process types; add a line like `web: ...`.")
    return commands


_FLASK_APP = re.compile(r"^(app)\s*=\s*(?:flask\.)?Flask\(", re.MULTILINE)
_FLASK_FACTORY = re.compile(r"^def (create_app)\(", re.MULTILINE)
_ASGI_APP = re.compile(
    r"^(\w+)\s*(?::\s*\w+\s*)?=\s*(?:fastapi\.|starlette\.applications\.)?(FastAPI|Starlette)\(",
    re.MULTILINE,
)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _infer_django(source: Path) -> ProcessTypes | None:
    if not (source / "manage.py").is_file():
        return None
    for wsgi in sorted(source.glob("*/wsgi.py")):
        project = wsgi.parent.name
        return ProcessTypes({"web": f"gunicorn {project}.wsgi"}, f"Django project {project!r}")
    return None


def _infer_asgi(source: Path) -> ProcessTypes | None:
    for module in ("main", "app", "asgi", "api"):
        match = _ASGI_APP.search(_read(source / f"{module}.py"))
        if match:
            command = f"uvicorn {module}:{match.group(1)} --host 127.0.0.1 --port $PORT"
            return ProcessTypes({"web": command}, f"{match.group(2)} app in {module}.py")
    return None


def _infer_flask(source: Path) -> ProcessTypes | None:
    for module in ("app", "wsgi"):
        text = _read(source / f"{module}.py")
        if "flask" not in text.lower():
            continue
        if _FLASK_APP.search(text) or re.search(r"^app\s*=\s*create_app\(", text, re.MULTILINE):
            return ProcessTypes({"web": f"gunicorn {module}:app"}, f"Flask app in {module}.py")
        if _FLASK_FACTORY.search(text):
            command = f"gunicorn '{module}:create_app()'"
            return ProcessTypes({"web": command}, f"Flask app factory in {module}.py")
    return None


def process_types(
    source: Path, procfile: Path | None = None, *, required: bool = True
) -> ProcessTypes:
    """The app's process types: its Procfile, else an inferred ``web``, else a refusal.

    With ``required=False`` an app with nothing to run gets no process types instead.
    """
    path = procfile or source / "Procfile"
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ProcfileError(f"{path.name} is not UTF-8 text; save it as UTF-8.") from None
        return ProcessTypes(parse_procfile(text, path.name))
    if procfile is not None:
        raise ProcfileError(f"{procfile} does not exist; pass the path of a Procfile.")
    for infer in (_infer_django, _infer_asgi, _infer_flask):
        found = infer(source)
        if found:
            return found
    if not required:
        return ProcessTypes({})
    raise ProcfileError(
        "No Procfile, and no Flask, Django or ASGI app to infer a web process from; "
        "add a Procfile with a line like `web: gunicorn app:app`."
    )
