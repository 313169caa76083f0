"""The CLI's credentials and API client: saved safely, overridable, failing in one line."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, jsonify

from support.cli import cli_env, corral
from support.processes import free_port
from support.stub_api import TOKEN, api_error, require_token, serve


def contract_app() -> Flask:
    """The two endpoints these tests need, as docs/api.md describes them."""
    app = Flask(__name__)

    @app.get("/api/v1/whoami")
    @require_token
    def whoami():
        return jsonify(
            {"token": {"id": "t1", "name": "laptop", "created_at": "2026-01-01T00:00:00Z"}}
        )

    @app.get("/api/v1/apps")
    @require_token
    def apps():
        return jsonify([])

    @app.get("/api/v1/apps/<name>")
    @require_token
    def app_info(name: str):
        return api_error(404, "not_found", f"No app named {name}; see `corral apps`.")

    return app


@pytest.fixture
def server() -> Iterator[str]:
    with serve(contract_app()) as url:
        yield url


def assert_token_not_shown(*outputs: str) -> None:
    for output in outputs:
        assert TOKEN not in output


def test_login_saves_credentials_readable_by_the_owner_only(server: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    result = corral("login", "--server", server, "--token", TOKEN, env=env)
    assert result.returncode == 0, result.stderr
    assert "Logged in to" in result.stdout and "laptop" in result.stdout
    assert_token_not_shown(result.stdout, result.stderr)
    path = Path(env["CORRAL_CREDENTIALS"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"server": server, "token": TOKEN}
    nested = tmp_path / "home" / "deep" / "dir" / "credentials.json"
    env["CORRAL_CREDENTIALS"] = str(nested)
    assert corral("login", "--server", server, "--token", TOKEN, env=env).returncode == 0
    assert stat.S_IMODE(nested.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(nested.stat().st_mode) == 0o600


def test_saved_credentials_are_used_and_logout_forgets_them(server: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert corral("login", "--server", server, "--token", TOKEN, env=env).returncode == 0
    result = corral("whoami", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"token laptop on {server}"
    assert corral("logout", env=env).returncode == 0
    assert not Path(env["CORRAL_CREDENTIALS"]).exists()
    result = corral("whoami", env=env)
    assert result.returncode == 1
    assert "Not logged in; run `corral login --server URL`" in result.stderr


def test_login_with_a_wrong_token_saves_nothing(server: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    result = corral("login", "--server", server, "--token", "wrong", env=env)
    assert result.returncode == 1
    assert "The server refused the token" in result.stderr
    assert not Path(env["CORRAL_CREDENTIALS"]).exists()


def test_environment_variables_override_the_credentials_file(server: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    stale = {"server": f"http://127.0.0.1:{free_port()}", "token": "old"}
    Path(env["CORRAL_CREDENTIALS"]).write_text(json.dumps(stale))
    env |= {"CORRAL_SERVER": server, "CORRAL_TOKEN": TOKEN}
    result = corral("whoami", env=env)
    assert result.returncode == 0, result.stderr
    assert server in result.stdout


def test_saved_token_is_never_sent_to_another_server(server: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    other = f"http://127.0.0.1:{free_port()}"
    Path(env["CORRAL_CREDENTIALS"]).write_text(json.dumps({"server": other, "token": TOKEN}))
    result = corral("whoami", env=env | {"CORRAL_SERVER": server})
    assert result.returncode == 1
    assert "the saved token is for another server" in result.stderr
    Path(env["CORRAL_CREDENTIALS"]).write_text(json.dumps({"server": server, "token": TOKEN}))
    assert corral("whoami", env=env | {"CORRAL_SERVER": server + "/"}).returncode == 0


def test_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = corral("apps", env=cli_env(tmp_path, server=url))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: Cannot reach the corral server at {url}; is `corral server` running? "
        "(connection refused)"
    ]


def test_refused_token_says_how_to_log_in_again(server: str, tmp_path: Path) -> None:
    result = corral("apps", env=cli_env(tmp_path, server=server, token="not-the-token"))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: The server refused the token; log in again with `corral login --server {server}`."
    )
    assert "Traceback" not in result.stderr


def test_server_error_message_is_shown_as_is(server: str, tmp_path: Path) -> None:
    result = corral("apps:info", "-a", "ghost", env=cli_env(tmp_path, server=server))
    assert result.returncode == 1
    assert result.stderr.strip() == "error: No app named ghost; see `corral apps`."
    assert_token_not_shown(result.stdout, result.stderr)


def test_login_reads_the_token_from_stdin_without_a_terminal(server: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    result = corral("login", "--server", server, env=env, input=TOKEN + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no getpass "Can not control echo" warning
    assert json.loads(Path(env["CORRAL_CREDENTIALS"]).read_text())["token"] == TOKEN
    assert_token_not_shown(result.stdout)


def test_login_takes_server_and_token_from_the_environment(server: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path) | {"CORRAL_SERVER": server, "CORRAL_TOKEN": TOKEN}
    result = corral("login", env=env, input="")
    assert result.returncode == 0, result.stderr
    assert f"Logged in to {server} as token laptop" in result.stdout
    assert json.loads(Path(env["CORRAL_CREDENTIALS"]).read_text()) == {
        "server": server,
        "token": TOKEN,
    }


def test_login_without_any_token_says_how_to_give_one(server: str, tmp_path: Path) -> None:
    result = corral("login", "--server", server, env=cli_env(tmp_path), input="")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: No token given; pass --token TOKEN, set $CORRAL_TOKEN, or pipe it in "
        "(echo TOKEN | corral login --server URL)."
    )
    assert "Warning" not in result.stderr
