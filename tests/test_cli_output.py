"""What the listing commands print into a pipe: every value whole, no box, no colour, and
``--json`` on each of them (``logs --json``: one object per line)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify

from support.cli import cli_env, corral
from support.stub_api import require_token, serve

NOW = "2026-11-24T10:00:00+00:00"
LONG_URL = "http://a-rather-long-application-name.apps.some-very-long-domain.example.com:8080/"
LONG_DESCRIPTION = "Deploy 0123456789abcdef0123456789abcdef01234567 by somebody@example.com"
BOX = set("─│┃━┏┓┗┛┡┩└┘┌┐╭╮╰╯")


def stub() -> Flask:
    app = Flask(__name__)
    release = {
        "app": "hello",
        "version": 3,
        "name": "v3",
        "description": LONG_DESCRIPTION,
        "status": "succeeded",
        "slug_id": "abc123",
        "process_types": {"web": "gunicorn --workers 4 --bind 0.0.0.0:$PORT app:app"},
        "config_keys": ["GREETING"],
        "created_at": NOW,
    }

    @app.get("/api/v1/apps")
    @require_token
    def apps() -> Any:
        return jsonify(
            [
                {
                    "name": "a-rather-long-application-name",
                    "web_url": LONG_URL,
                    "current_release": 3,
                    "maintenance": True,
                    "created_at": NOW,
                }
            ]
        )

    @app.get("/api/v1/apps/<name>")
    @require_token
    def info(name: str) -> Any:
        return jsonify(
            {"name": name, "web_url": LONG_URL, "release": release, "created_at": NOW}
            | {"formation": [], "dynos": [], "domains": [], "maintenance": False}
        )

    @app.get("/api/v1/apps/<name>/releases")
    @require_token
    def releases(name: str) -> Any:
        return jsonify([release])

    @app.get("/api/v1/apps/<name>/releases/<int:version>")
    @require_token
    def release_info(name: str, version: int) -> Any:
        return jsonify(release)

    @app.get("/api/v1/apps/<name>/dynos")
    @require_token
    def dynos(name: str) -> Any:
        dyno = {"name": "web.1", "type": "web", "release": "v3", "state": "up", "since": NOW}
        return jsonify([dyno | {"port": 5001, "rss_bytes": 52_400_000, "cpu_percent": 1.5}])

    @app.get("/api/v1/apps/<name>/formation")
    @require_token
    def formation(name: str) -> Any:
        return jsonify([{"type": "web", "quantity": 2, "command": "gunicorn app:app"}])

    @app.get("/api/v1/apps/<name>/logs")
    @require_token
    def logs(name: str) -> Any:
        lines = [
            "2026-11-24T10:00:00.000001+00:00 app[web.1]: started",
            "2026-11-24T10:00:01.000001+00:00 router: at=info status=200",
            "a line of another shape",
        ]
        return Response("".join(line + "\n" for line in lines), mimetype="text/plain")

    return app


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with serve(stub()) as url:
        # a narrow COLUMNS is what rich sized its tables to, cutting long values
        yield cli_env(tmp_path, server=url) | {"CORRAL_APP": "hello", "COLUMNS": "40"}


def plain(result: Any) -> list[str]:
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout  # no colour codes in a pipe
    assert not BOX & set(result.stdout), result.stdout
    return result.stdout.splitlines()


def test_apps_into_a_pipe_prints_whole_urls_in_plain_columns(env: dict[str, str]):
    lines = plain(corral("apps", env=env))
    assert lines[0].split() == ["name", "url", "release", "maintenance", "created"]
    assert lines[1].split()[:4] == ["a-rather-long-application-name", LONG_URL, "v3", "on"]


def test_info_and_releases_into_a_pipe_keep_long_values_whole(env: dict[str, str]):
    assert f"Web URL:     {LONG_URL}" in plain(corral("apps:info", env=env))
    listed = plain(corral("releases", env=env))
    assert any(line.startswith("v3") and LONG_DESCRIPTION in line for line in listed)
    info = plain(corral("releases:info", "v3", env=env))
    assert "Process web: gunicorn --workers 4 --bind 0.0.0.0:$PORT app:app" in info


def test_ps_into_a_pipe_is_plain_columns(env: dict[str, str]):
    lines = plain(corral("ps", env=env))
    assert lines[0].split() == ["dyno", "state", "since", "release", "port", "RSS", "MB", "CPU%"]
    assert lines[1].split()[:2] == ["web.1", "up"]


def test_formation_and_logs_print_json(env: dict[str, str]):
    formation = corral("ps:scale", "--json", env=env)
    assert json.loads(formation.stdout) == [
        {"type": "web", "quantity": 2, "command": "gunicorn app:app"}
    ]
    logged = corral("logs", "--json", env=env)
    assert logged.returncode == 0, logged.stderr
    assert [json.loads(line) for line in logged.stdout.splitlines()] == [
        {
            "time": "2026-11-24T10:00:00.000001+00:00",
            "source": "app",
            "dyno": "web.1",
            "message": "started",
        },
        {
            "time": "2026-11-24T10:00:01.000001+00:00",
            "source": "router",
            "dyno": None,
            "message": "at=info status=200",
        },
        {"time": None, "source": None, "dyno": None, "message": "a line of another shape"},
    ]
