"""What a CLI command imports: only what it uses, so it starts fast (bench/cli.py times it).

Each command runs in a subprocess as a user would run it, and reports the modules it had
loaded when it exited; timings are the bench's business, these tests check the imports.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, jsonify

from support.cli import cli_env
from support.stub_api import require_token, serve

#: Runs the entry point as the console script does, then writes the modules it loaded.
WRAPPER = """
import atexit, sys
path = sys.argv.pop(1)
def report():
    with open(path, "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
atexit.register(report)
sys.argv[0] = "corral"
from corral.cli import main
main()
"""

#: What a plain API command into a pipe has no use for: colour and tables, the old HTTP
#: client and the standard one (whose ``email`` headers parser costs most of its import),
#: TLS for an http:// server, a browser.
UNUSED_BY_APPS = ("rich", "httpx", "httpcore", "http.client", "email", "ssl", "webbrowser")


def stub() -> Flask:
    app = Flask(__name__)

    @app.get("/api/v1/apps")
    @require_token
    def apps():
        return jsonify(
            [
                {
                    "name": "hello",
                    "web_url": "http://hello.localhost:8080/",
                    "current_release": 2,
                    "maintenance": False,
                    "created_at": "2026-11-24T10:00:00+00:00",
                }
            ]
        )

    return app


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with serve(stub()) as url:
        env = cli_env(tmp_path, server=url)
        for key in ("FORCE_COLOR", "TTY_COMPATIBLE"):
            env.pop(key, None)
        yield env


def loaded(
    tmp_path: Path, env: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``corral ARGS`` into a pipe; what it did, and the modules it had imported."""
    report = tmp_path / "modules.txt"
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(report), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, set(report.read_text().split())


def imported(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_version_imports_no_command_line_parser_colour_or_http(tmp_path: Path):
    result, modules = loaded(tmp_path, cli_env(tmp_path), "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "corral, version 0.1.0\n"
    for package in ("click", "rich", "httpx", "socket", "corral.cli.client"):
        assert not imported(modules, package), f"--version imported {package}"


def test_version_after_a_command_is_still_clicks_answer(tmp_path: Path):
    result, modules = loaded(tmp_path, cli_env(tmp_path), "--version", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "corral, version 0.1.0\n"  # click handles an eager --version
    assert imported(modules, "click")


def test_apps_into_a_pipe_imports_only_what_it_prints_with(env: dict[str, str], tmp_path: Path):
    result, modules = loaded(tmp_path, env, "apps")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:3] == [
        "hello",
        "http://hello.localhost:8080/",
        "v2",
    ]
    for package in UNUSED_BY_APPS:
        assert not imported(modules, package), f"corral apps imported {package}"


def test_apps_on_a_terminal_draws_a_rich_table(env: dict[str, str], tmp_path: Path):
    result, modules = loaded(tmp_path, env | {"FORCE_COLOR": "1", "COLUMNS": "120"}, "apps")
    assert result.returncode == 0, result.stderr
    assert "┏" in result.stdout and "hello" in result.stdout
    assert "\x1b[1m" in result.stdout  # the bold header
    assert imported(modules, "rich.table")


def test_a_user_error_into_a_pipe_is_plain_and_on_a_terminal_red(tmp_path: Path):
    env = cli_env(tmp_path)  # no server, no credentials
    piped, modules = loaded(tmp_path, env, "apps")
    assert piped.returncode == 1
    assert piped.stderr.startswith("error: Not logged in; run `corral login --server URL`")
    assert "\x1b[" not in piped.stderr and "Traceback" not in piped.stderr
    assert not imported(modules, "rich")
    shown, _ = loaded(tmp_path, env | {"FORCE_COLOR": "1"}, "apps")
    assert shown.returncode == 1
    assert "\x1b[1;31merror: \x1b[0mNot logged in" in shown.stderr
