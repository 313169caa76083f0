"""Procfile parsing and web inference, with plain strings and small trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.builder.procfile import parse_procfile, process_types
from corral.errors import ProcfileError


def test_parses_names_commands_comments_and_blank_lines() -> None:
    text = "# processes\n\nweb: gunicorn app:app --workers 2\nworker_1: python worker.py\n"
    assert parse_procfile(text) == {
        "web": "gunicorn app:app --workers 2",
        "worker_1": "python worker.py",
    }


def test_keeps_colons_inside_commands() -> None:
    assert parse_procfile("web: gunicorn 'app:create_app()'") == {
        "web": "gunicorn 'app:create_app()'"
    }


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("web: ok\nthis line has no colon\n", 2),
        ("web: ok\n\nbad name: x\n", 3),
        ("w/eb: x\n", 1),
        ("web:\n", 1),
        ("web: a\nweb: b\n", 2),
    ],
)
def test_malformed_line_fails_with_its_number(text: str, line: int) -> None:
    with pytest.raises(ProcfileError, match=rf"line {line}\b"):
        parse_procfile(text)


def test_empty_procfile_is_refused() -> None:
    with pytest.raises(ProcfileError, match="no process types"):
        parse_procfile("# nothing\n")


def test_infers_flask_app(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    found = process_types(tmp_path)
    assert found.commands == {"web": "gunicorn app:app"}
    assert "Flask" in found.inferred_from


def test_infers_flask_factory_in_wsgi(tmp_path: Path) -> None:
    (tmp_path / "wsgi.py").write_text("from flask import Flask\ndef create_app():\n    pass\n")
    assert process_types(tmp_path).commands == {"web": "gunicorn 'wsgi:create_app()'"}


def test_infers_django(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("")
    (tmp_path / "mysite").mkdir()
    (tmp_path / "mysite" / "wsgi.py").write_text("")
    assert process_types(tmp_path).commands == {"web": "gunicorn mysite.wsgi"}


def test_infers_fastapi(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("from fastapi import FastAPI\napi = FastAPI()\n")
    command = process_types(tmp_path).commands["web"]
    assert command.startswith("uvicorn main:api ")


def test_procfile_wins_over_inference(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (tmp_path / "Procfile").write_text("web: python app.py\n")
    found = process_types(tmp_path)
    assert found.commands == {"web": "python app.py"} and not found.inferred_from


def test_nothing_to_infer_says_what_to_add(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text("print('hi')\n")
    with pytest.raises(ProcfileError, match="add a Procfile"):
        process_types(tmp_path)


def test_nothing_to_infer_is_fine_when_processes_are_not_required(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text("print('hi')\n")
    assert process_types(tmp_path, required=False).commands == {}
